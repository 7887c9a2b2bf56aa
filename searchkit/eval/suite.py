"""Evaluate first-stage settings over a suite of datasets: a table per dataset, mean and worst.

A suite is a TOML file of BEIR folders, each with the split defaults are chosen on (``tune``:
train or dev) and the split they are reported on (``test``)::

    index_root = "indexes"            # optional; relative to the file, like every path
    [[dataset]]
    name = "scifact"
    path = "../../shared/data/beir/scifact"
    tune = "train"
    test = "test"
    limit = 500                       # optional: only the first 500 judged queries per split
    build = { language = "en" }       # optional: build_index options

Each dataset's index is built once (or reused, see ``ensure_index``) and each judged query is
retrieved once per first stage (dense and lexical, the top 100 as hybrid search fuses them);
every setting then ranks from those lists with the same functions a search uses
(``searchkit.query.fusion``), so a sweep of fusions costs one retrieval per dataset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from searchkit.errors import DatasetError, InvalidParameter
from searchkit.eval.beir import EvalSet, load_beir
from searchkit.eval.evaluate import DEPTH, ensure_index
from searchkit.eval.metrics import score_run
from searchkit.index.paths import INDEX_ROOT
from searchkit.options import FUSIONS, SearchOptions
from searchkit.query.fusion import fuser
from searchkit.query.searcher import Searcher
from searchkit.query.stage import QueryBatch

ROLES = ("tune", "test")


@dataclass(frozen=True)
class SuiteSet:
    """One dataset of a suite: a BEIR folder, its tune and test splits, how to index it."""

    name: str
    path: Path
    test: str = "test"
    tune: str | None = None  # None: the dataset is only reported on, never tuned on
    limit: int | None = None  # first N judged queries of each split
    build: dict[str, Any] = field(default_factory=dict)

    def split(self, role: str) -> str | None:
        """The split of ``role`` (``tune`` or ``test``)."""
        return self.tune if role == "tune" else self.test


@dataclass(frozen=True)
class Suite:
    """Datasets evaluated together, their indexes under ``index_root``."""

    sets: list[SuiteSet]
    index_root: Path = INDEX_ROOT


@dataclass(frozen=True)
class Setting:
    """A first stage to measure: a label and the ``SearchOptions`` fields it sets."""

    label: str
    options: dict[str, Any]


def load_suite(path: str | Path) -> Suite:
    """Read a suite TOML file (see the module docstring); paths are relative to the file.

    Raises:
        DatasetError: the file is not valid TOML, names no dataset, or an entry lacks
            ``path`` or has an unknown key.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise DatasetError(path, None, f"cannot read the suite file: {err}") from None
    entries = doc.get("dataset")
    if not isinstance(entries, list) or not entries:
        raise DatasetError(path, None, "no [[dataset]] entries; see searchkit.eval.suite")
    known = {f.name for f in dataclasses.fields(SuiteSet)}
    sets = []
    for n, entry in enumerate(entries, 1):
        if "path" not in entry or (extra := set(entry) - known):
            what = "has no path" if "path" not in entry else f"has unknown keys {sorted(extra)}"
            raise DatasetError(path, None, f"dataset {n} {what}; keys: {sorted(known)}")
        root = path.parent / entry["path"]
        sets.append(SuiteSet(**{**entry, "name": entry.get("name", root.name), "path": root}))
    root = doc.get("index_root")
    return Suite(sets, path.parent / root if root else INDEX_ROOT)


def datasets_suite(paths: Sequence[str | Path], split: str = "test", **build: Any) -> Suite:
    """A suite of BEIR folders given one by one (``searchkit eval --dataset A --dataset B``),
    each reported on ``split``."""
    return Suite([SuiteSet(Path(p).name, Path(p), split, build=dict(build)) for p in paths])


def default_settings(options: SearchOptions | None = None) -> list[Setting]:
    """Dense, lexical, and hybrid with each fusion at ``options``' parameters."""
    opts = options or SearchOptions()
    hybrid = [
        Setting(f"hybrid {f}", {"mode": "hybrid", "fusion": f, "rrf_k": opts.rrf_k,
                                "weight": opts.weight})
        for f in FUSIONS
    ]  # fmt: skip
    return [Setting("dense", {"mode": "dense"}), Setting("lexical", {"mode": "lexical"}), *hybrid]


@dataclass
class FirstStages:
    """Each judged query's dense and lexical top ``DEPTH`` as (ids, scores), best first."""

    data: EvalSet
    lists: dict[str, dict[str, tuple[list[str], np.ndarray]]]
    bounds: dict[str, float] | None = None  # gated fusion's, per query (None: not known)

    def run(self, options: Mapping[str, Any]) -> dict[str, list[str]]:
        """Query -> ranked ids under ``options`` (a ``SearchOptions`` subset): one list, or
        both fused exactly as a hybrid search fuses them."""
        opts = SearchOptions().replace(**options)
        if opts.mode in self.lists:
            return {q: ids for q, (ids, _) in self.lists[opts.mode].items()}
        out = {}
        for q in self.data.queries:
            bounds = None if self.bounds is None else [self.bounds[q]]
            fuse = fuser(opts.fusion, opts.rrf_k, opts.weight, bounds)
            pair = [self.lists["dense"][q], self.lists["lexical"][q]]
            ids = list(dict.fromkeys(pair[0][0] + pair[1][0]))  # dense first, as search
            number = {doc: n for n, doc in enumerate(ids)}
            ranked = [
                (scores.reshape(1, -1), np.array([[number[d] for d in docs]], dtype=np.int64))
                for docs, scores in pair
            ]
            _, refs = fuse(ranked, DEPTH)
            out[q] = [ids[r] for r in refs[0].tolist() if r >= 0]
        return out

    def score(self, options: Mapping[str, Any]) -> dict[str, float]:
        """The metrics (``score_run``) of the run under ``options``."""
        return score_ids(self.data, self.run(options))


def score_ids(data: EvalSet, run: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``score_run`` of ranked id lists (scores that encode rank, as ``evaluate`` does)."""
    ranked = {q: {d: float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in run.items()}
    return score_run(data.qrels, ranked)


def first_stages(searcher: Searcher, data: EvalSet, batch: int = 32) -> FirstStages:
    """Retrieve every judged query of ``data`` once per first stage, in batches."""
    ids = list(data.queries)
    lists: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {}
    for mode in ("dense", "lexical"):
        lists[mode] = {}
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            found = searcher.search_batch(
                [data.queries[q] for q in chunk], DEPTH, rerank=False, mode=mode
            )
            for q, hits in zip(chunk, found, strict=True):
                scores = np.array([h.retrieval_score for h in hits], dtype=np.float64)
                lists[mode][q] = ([h.id for h in hits], scores)
    return FirstStages(data, lists, _bounds(searcher, data))


def _bounds(searcher: Searcher, data: EvalSet) -> dict[str, float] | None:
    """Each query's lexical bound as a gated hybrid search computes it."""
    ids = list(data.queries)
    batch = QueryBatch(np.zeros((len(ids), 1)), searcher._query_terms(list(data.queries.values())))
    bounds = searcher._lexical_bounds(batch, SearchOptions(fusion="gated"))
    return None if bounds is None else dict(zip(ids, bounds, strict=True))


def load_split(entry: SuiteSet, role: str) -> EvalSet | None:
    """The judged queries of ``entry``'s ``role`` split (its first ``limit``), None if it has
    none."""
    if role not in ROLES:
        raise InvalidParameter(
            f"a suite's split is tune (each dataset's train/dev split) or test, not {role!r}",
            param="split",
        )
    split = entry.split(role)
    if split is None:
        return None
    data = load_beir(entry.path, split, encoding=entry.build.get("encoding", "utf-8"))
    data = dataclasses.replace(data, name=f"{entry.name} {split}")
    if entry.limit is None or entry.limit >= len(data.queries):
        return data
    keep = list(data.queries)[: entry.limit]
    return dataclasses.replace(
        data, queries={q: data.queries[q] for q in keep}, qrels={q: data.qrels[q] for q in keep}
    )


@dataclass
class SuiteResult:
    """nDCG@10 (and the other metrics) per dataset and setting, with each setting's mean and
    worst margin over the better single first stage."""

    role: str
    settings: list[Setting]
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> info, metrics

    def summary(self, metric: str = "nDCG@10") -> dict[str, dict[str, Any]]:
        """Per setting: the mean of ``metric`` over the datasets, and its margin over
        max(dense, lexical) per dataset, mean and worst (with the dataset)."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.settings:
            values, margins = [], {}
            for name, d in self.datasets.items():
                m = d["metrics"]
                values.append(m[s.label][metric])
                if "dense" in m and "lexical" in m:
                    best = max(m["dense"][metric], m["lexical"][metric])
                    margins[name] = m[s.label][metric] - best
            worst = min(margins, key=margins.__getitem__) if margins else None
            out[s.label] = {
                "mean": float(np.mean(values)),
                "margin_mean": float(np.mean(list(margins.values()))) if margins else None,
                "margin_worst": margins[worst] if worst else None,
                "worst_dataset": worst,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "settings": {s.label: s.options for s in self.settings},
            "datasets": self.datasets,
            "summary": self.summary(),
        }


def run_suite(
    suite: Suite,
    settings: Sequence[Setting] | None = None,
    *,
    role: str = "test",
    progress: bool = True,
    query_runtime: str | None = None,
) -> SuiteResult:
    """Every ``settings`` (default ``default_settings()``) on the ``role`` split of every
    dataset of ``suite``; datasets without that split are left out.

    Example::

        result = run_suite(load_suite("benchmarks/suite.toml"), role="tune")
        print(result.summary()["hybrid weighted"])
    """
    settings = list(settings or default_settings())
    result = SuiteResult(role, settings)
    for entry in suite.sets:
        data = load_split(entry, role)
        if data is None:
            continue
        build = {k: v for k, v in entry.build.items() if k != "encoding"}
        index = ensure_index(data, suite.index_root / entry.name, progress=progress, **build)
        searcher = Searcher.open(index, query_runtime=query_runtime, query_cache=0)
        try:
            stages = first_stages(searcher, data)
        finally:
            searcher.close()
        result.datasets[data.name] = {
            "dataset": entry.name,
            "split": entry.split(role),
            "queries": len(data.queries),
            "index": str(index),
            "metrics": {s.label: stages.score(s.options) for s in settings},
        }
    if not result.datasets:
        raise DatasetError(
            "suite", None, f"no dataset of the suite has a {role} split; give one in the file"
        )
    return result
