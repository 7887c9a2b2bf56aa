"""Evaluate an index on judged queries: quality metrics and latency, with and without rerank."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from searchkit.errors import DatasetError, IndexExists, InvalidParameter
from searchkit.eval.beir import EvalSet, load_beir, load_eval_set
from searchkit.eval.metrics import percentiles_ms, score_run
from searchkit.index.manifest import MANIFEST, Manifest
from searchkit.index.paths import INDEX_ROOT
from searchkit.ingest.build import build_index
from searchkit.ingest.corpus import corpus_sha256
from searchkit.models import Hits
from searchkit.options import SearchOptions
from searchkit.progress import TaskProgress
from searchkit.query.filters import Where
from searchkit.query.searcher import Searcher

DEPTH = 100  # retrieved per query: enough for Recall@100 and MAP@100

__all__ = ["EvalResult", "ensure_index", "evaluate", "prepare", "score_run"]


@dataclass
class EvalResult:
    """Metrics per stage (``retrieval``, ``rerank``) and per-query latency percentiles in ms."""

    name: str
    index: str
    queries: int
    candidates: int
    reranker: str | None
    search: dict[str, Any] = field(default_factory=dict)  # the SearchOptions and where
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # rerank stage: pairs scored, pairs longer than the reranker reads, and that length;
    # queries that exited early, and the margin
    truncation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_index(data: EvalSet, out: str | Path | None = None, **build: Any) -> Path:
    """The index of ``data.corpus`` at ``out`` (default ``indexes/<name>``): reused when it
    was built from the same corpus bytes and with the ``model``, ``language``, ``runtime`` and
    ``precision`` that ``build`` names (those it leaves out are not compared), else built
    (``build`` goes to ``build_index``).

    Raises:
        IndexExists: ``out`` holds an index of another corpus, or built another way (pass
            ``force=True`` to rebuild it).
    """
    if data.corpus is None:
        raise DatasetError(data.name, None, "no corpus to index; give an index folder instead")
    out = Path(out) if out is not None else INDEX_ROOT / data.name
    if (out / MANIFEST).exists() and not build.get("force"):
        manifest = Manifest.read(out)
        if manifest.corpus.sha256 != corpus_sha256(data.corpus):
            raise IndexExists(
                f"{out} holds an index of another corpus; pass force=True to rebuild it"
            )
        if differs := _build_differences(manifest, build):
            raise IndexExists(
                f"{out} holds an index of this corpus built with {'; '.join(differs)}; pass "
                "force=True to rebuild it, or another out="
            )
        return out
    return build_index(data.corpus, out, encoding=data.encoding, **build).path


def _build_differences(manifest: Manifest, build: dict[str, Any]) -> list[str]:
    """What of ``build`` (model, language, runtime, precision) the index was not built with."""
    built = {
        "model": manifest.encoder.name,
        "language": manifest.language,
        "runtime": manifest.encoder.runtime,
        "precision": manifest.encoder.precision,
    }
    wanted = {k: build.get(k) for k in built}
    wanted["language"] = None if wanted["language"] == "auto" else wanted["language"]
    return [
        f"{k}={built[k]!r}, not {k}={v!r}"
        for k, v in wanted.items()
        if v is not None and Path(str(v)).name != Path(str(built[k])).name
    ]


def prepare(
    index: str | Path | None = None,
    *,
    dataset: str | Path | None = None,
    split: str = "test",
    queries: str | Path | None = None,
    qrels: str | Path | None = None,
    encoding: str = "utf-8",
    **build: Any,
) -> tuple[Path, EvalSet]:
    """The index and the judged queries to evaluate, as ``searchkit eval`` takes them.

    Either a BEIR ``dataset`` folder (its index is built or reused unless ``index`` is given),
    or an ``index`` with ``queries`` (BEIR queries.jsonl) and ``qrels`` (TSV); the files are
    in ``encoding``.
    """
    if dataset is not None:
        data = load_beir(dataset, split, encoding=encoding)
    elif queries is not None and qrels is not None:
        data = load_eval_set(queries, qrels, encoding=encoding)
    else:
        raise InvalidParameter("give dataset=, or index= with queries= and qrels=")
    if index is not None:
        return Path(index), data
    if data.corpus is None:
        raise InvalidParameter("give the index= to evaluate these queries on", param="index")
    return ensure_index(data, **build), data


def evaluate(
    index: str | Path,
    data: EvalSet,
    *,
    options: SearchOptions | None = None,
    where: Where | None = None,
    reranker: str | None = None,
    progress: bool = True,
    query_runtime: str | None = None,
    reranker_runtime: str | None = None,
    rerank_max_tokens: int | None = None,
    **overrides: Any,
) -> EvalResult:
    """Run every judged query through ``index`` one at a time (to time each) and score the runs.

    The retrieval stage ranks the top 100 by the first stage (``options.mode``: dense, lexical
    or hybrid with its fusion; backend options such as ``ef_search`` apply); when
    ``options.rerank``, the rerank stage reranks the top ``options.candidates`` (the full query
    path, timed end to end; ``rerank_weight`` < 1 fuses the reranker's scores with the first
    stage's; ``rerank_margin`` exits early) and keeps the rest of the top 100 in retrieval order
    below them, as BEIR does. ``where`` filters both stages. Query runtimes and
    ``rerank_max_tokens`` are as for ``Searcher``; the query cache is off, so the rerank stage's
    latency includes embedding the query again. ``overrides`` are single ``SearchOptions``
    fields.

    Example::

        data = load_beir("../shared/data/beir/scifact", "test")
        result = evaluate(ensure_index(data), data, candidates=20)
        print(result.metrics["rerank"]["nDCG@10"])
    """
    searcher = Searcher.open(
        index,
        reranker=reranker,
        query_runtime=query_runtime,
        reranker_runtime=reranker_runtime,
        rerank_max_tokens=rerank_max_tokens,
        query_cache=0,
    )
    _check_ids(searcher, data)
    opts = (options or SearchOptions()).replace(**overrides)
    opts = opts.replace(mode=searcher.resolve_mode(opts.mode))
    recorded = {**opts.to_dict(), "where": where}
    result = EvalResult(data.name, str(index), len(data.queries), opts.candidates, None, recorded)
    stage = functools.partial(_run_stage, searcher, data, result, progress=progress, where=where)
    retrieved = stage("retrieval", DEPTH, opts.replace(rerank=False))
    result.metrics["retrieval"] = score_run(
        data.qrels, {q: _ranked(h) for q, h in retrieved.items()}
    )
    if opts.rerank:
        reranked = stage("rerank", opts.candidates, opts)
        if all(h.reranked or h.early_exit for h in reranked.values()):
            result.reranker = searcher.reranker.name
            result.truncation = {
                "pairs": sum(h.candidates for h in reranked.values()),
                "truncated": sum(h.truncated for h in reranked.values()),
                "max_tokens": searcher.reranker.max_tokens,
                "early_exit": sum(h.early_exit for h in reranked.values()),
                "margin": opts.rerank_margin,
            }
            run = {q: _with_tail(reranked[q], retrieved[q]) for q in reranked}
            result.metrics["rerank"] = score_run(data.qrels, run)
        else:
            del result.latency_ms["rerank"]
            result.notes.append("the reranker could not be loaded: rerank stage not measured")
    return result


def _run_stage(
    searcher: Searcher,
    data: EvalSet,
    result: EvalResult,
    stage: str,
    k: int,
    options: SearchOptions,
    *,
    progress: bool,
    where: Where | None,
) -> dict[str, Hits]:
    hits, seconds = {}, []
    search = functools.partial(searcher.search, k=k, where=where, options=options)
    search(next(iter(data.queries.values())))  # load models before timing
    with TaskProgress(f"{data.name}: {stage}", len(data.queries), enabled=progress) as bar:
        for qid, text in data.queries.items():
            started = time.perf_counter()
            hits[qid] = search(text)
            seconds.append(time.perf_counter() - started)
            bar.advance(1)
    result.latency_ms[stage] = percentiles_ms(seconds)
    return hits


def _ranked(hits: list[Any]) -> dict[str, float]:
    """Scores that encode rank, so ties or mixed score scales cannot reorder a run."""
    return {h.id: float(len(hits) - i) for i, h in enumerate(hits)}


def _with_tail(reranked: Hits, retrieved: Hits) -> dict[str, float]:
    seen = {h.id for h in reranked}
    return _ranked([*reranked, *(h for h in retrieved if h.id not in seen)])


def _check_ids(searcher: Searcher, data: EvalSet) -> None:
    judged = {d for docs in data.qrels.values() for d in docs}
    if missing := sorted(judged - set(searcher.ids())):
        raise DatasetError(
            data.name,
            None,
            f"{len(missing)} of {len(judged)} judged documents are not in the index "
            f"{searcher.path}, e.g. {missing[:3]}; was it built from this dataset's corpus?",
        )
