"""The exception tree of searchkit.

* SearchkitError          catch this in apps; the CLI turns it into exit code 1
  x CorpusError           "corpus.jsonl:17: missing field 'text'"
  x DatasetError          evaluation data: "qrels/test.tsv:4: expected 3 columns"
  x IndexError_           an index folder that cannot be used
    x IndexNotFound       no index at that path
    x IndexExists         refusing to overwrite without force
    x IncompatibleIndex   unknown format version, model dimension mismatch
    x CorruptIndex        missing file, checksum or count mismatch
    x IndexLocked         another writer holds the index's lock
  x UnknownBackend        no such vector backend or kind
  x ModelUnavailable      a model that cannot be loaded
  x InvalidParameter      a bad option value (k, candidates, efSearch, ...)
    x FilterError         a malformed metadata filter or an unknown field
"""

from __future__ import annotations

from pathlib import Path


class SearchkitError(Exception):
    """Base class of every error searchkit raises on purpose."""


class CorpusError(SearchkitError):
    """Bad corpus input; the message names the file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[CorpusError], tuple[str, int | None, str]]:
        # pickle (Ray, multiprocessing) rebuilds from __init__'s arguments, not from the message
        return type(self), (self.path, self.line, self.problem)


class DatasetError(CorpusError):
    """Bad evaluation data (queries, qrels, BEIR layout); names file and line when it can."""


class IndexError_(SearchkitError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """An index folder that cannot be used as asked."""


class IndexNotFound(IndexError_):
    """No searchkit index at the given path."""


class IndexExists(IndexError_):
    """The target index exists and overwriting was not asked for."""


class IncompatibleIndex(IndexError_):
    """The index was written by an incompatible version or for another model."""


class CorruptIndex(IndexError_):
    """A file of the index is missing or does not match its recorded checksum."""


class IndexLocked(IndexError_):
    """Another writer is changing the index; only one writer at a time."""


class UnknownBackend(SearchkitError):
    """No such vector-index backend or kind."""


class ModelUnavailable(SearchkitError):
    """A model could not be loaded (not a local folder, not installed, hub not reachable)."""


class InvalidParameter(SearchkitError, ValueError):
    """An option value out of range."""


class FilterError(InvalidParameter):
    """A metadata filter that cannot be parsed or names a field the index does not have."""


class RerankerUnavailableWarning(UserWarning):
    """The default reranker could not be loaded; hits come back in retrieval order."""
