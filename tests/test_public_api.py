from __future__ import annotations

import searchkit


def test_public_names_are_pinned():
    assert sorted(searchkit.__all__) == sorted(
        [
            "BuildReport", "CommitReport", "CorpusError", "CorpusReader", "CorpusSource",
            "CorruptIndex", "read_corpus",
            "DatasetError", "Document", "FilterError", "Hit", "Hits", "IncompatibleIndex",
            "IndexExists", "IndexLocked", "IndexNotFound", "IndexWriter", "InvalidParameter",
            "Manifest", "ModelUnavailable", "Passage", "RerankerUnavailableWarning",
            "SearchkitError", "SearchOptions", "Searcher", "UnknownBackend", "__version__",
            "build_index",
            "verify_index",
        ]
    )  # fmt: skip
    for name in searchkit.__all__:
        assert hasattr(searchkit, name)


def test_every_error_is_a_searchkit_error():
    errors = [
        getattr(searchkit, n)
        for n in searchkit.__all__
        if n.endswith(
            ("Error", "Index", "Found", "Exists", "Locked", "Unavailable", "Parameter", "Backend")
        )
    ]
    for cls in errors:
        if isinstance(cls, type) and issubclass(cls, Exception):
            assert issubclass(cls, searchkit.SearchkitError), cls
