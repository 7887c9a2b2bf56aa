"""Presentation for the CLI: tables for people, JSON for programs (stdout only)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape as _escape
from rich.table import Table

from searchkit.eval.evaluate import EvalResult
from searchkit.eval.suite import SuiteResult
from searchkit.index.manifest import Manifest
from searchkit.index.sections import LexicalSection, MergePolicy
from searchkit.index.segment import disk_usage
from searchkit.inference.runtimes import from_manifest
from searchkit.ingest.build import BuildReport
from searchkit.ingest.corpus import SkippedLine
from searchkit.ingest.writer import CommitReport
from searchkit.models import Hits
from searchkit.training.common import TrainReport

SNIPPET_CHARS = 160
SKIPPED_SHOWN = 5


def _dump(data: Any) -> None:
    """JSON on stdout in UTF-8 whatever the locale's encoding (JSON is UTF-8: RFC 8259), so a
    GBK console or PYTHONIOENCODING neither escapes nor mangles Chinese."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text-only stream, e.g. contextlib.redirect_stdout(StringIO())
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    out.write(text.encode("utf-8"))
    out.flush()


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def print_build(report: BuildReport, as_json: bool = False) -> None:
    """The summary after ``searchkit index``."""
    m = report.manifest
    if as_json:
        _dump(
            {
                "index": str(report.path),
                "documents": m.documents,
                "seconds": round(report.seconds, 3),
                "docs_per_second": round(report.docs_per_second, 2),
                "skipped_lines": report.skipped_count,
                "skipped": [{"line": s.line, "problem": s.problem} for s in report.skipped],
                **m.passage_counts(),
                "manifest": m.to_dict(),
            }
        )
        return
    size = sum(f.bytes for f in m.files.values())
    console = Console()
    console.print(
        f"Indexed {m.documents:,} documents into {report.path} in {report.seconds:.1f}s "
        f"({report.docs_per_second:.1f} docs/s embedding); {m.backend.name} "
        f"{m.backend.kind}, {m.dim}-d, {_mb(size)} on disk."
    )
    console.print(f"Long documents: {_chunking(m)}.")
    _print_skipped(console, report.skipped_count, report.skipped)


def _print_skipped(console: Console, count: int, skipped: Sequence[SkippedLine]) -> None:
    if count:
        shown = ", ".join(f"line {s.line} ({s.problem})" for s in skipped[:SKIPPED_SHOWN])
        more = count - min(len(skipped), SKIPPED_SHOWN)
        console.print(
            f"Skipped {count} invalid lines: {shown}" + (f" and {more} more" if more else ""),
            markup=False,
        )


def print_hits(index: Path, hits: Hits, reranker: str, as_json: bool = False) -> None:
    """The hits of ``searchkit query``."""
    if as_json:
        _dump(
            {"index": str(index), "reranker": reranker if hits.reranked else None, **hits.to_dict()}
        )
        return
    how = f"reranked by {reranker}" if hits.reranked else "retrieval order (not reranked)"
    if hits.early_exit:
        how = "retrieval order (early exit: the first stage's top hit led by the margin)"
    title = f"{len(hits)} hits for {hits.query!r} in {index}, {hits.mode} retrieval, {how}"
    if hits.truncated:
        title += (
            f"; {hits.truncated} of {hits.candidates} candidates were longer than the reranker "
            "reads and were scored on their start"
        )
    table = Table(title=title, title_justify="left")
    for column in ("#", "score", "retr."):
        table.add_column(column, justify="right")
    table.add_column("document", overflow="fold")
    for hit in hits:
        # a long document shows the passage that matched
        text = " ".join((hit.passage.text if hit.passage else hit.text).split())
        snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."
        head = f"[bold]{_escape(hit.id)}[/bold]"
        if hit.title and hit.title != hit.id:
            head += f"  {_escape(hit.title)}"
        if hit.passage:
            p = hit.passage
            head += f"  (passage {p.index}, characters {p.start:,}-{p.end:,})"
        rank, score = str(hit.rank), f"{hit.score:.3f}"
        table.add_row(rank, score, str(hit.retrieval_rank), f"{head}\n{_escape(snippet)}")
    Console().print(table)


def print_manifest(index: Path, manifest: Manifest, as_json: bool = False) -> None:
    """What ``searchkit info`` shows."""
    if as_json:
        _dump({"index": str(index), **manifest.to_dict(), "disk_bytes": disk_usage(manifest)})
        return
    m = manifest
    params = ", ".join(f"{k}={v}" for k, v in m.backend.params.items()) or "-"
    rows = [
        ("index", str(index)),
        ("documents", f"{m.documents:,} live, {m.deleted:,} deleted (until compact)"),
        ("version", f"{m.version} (format {m.format_version}, searchkit {m.searchkit_version})"),
        (
            "segments",
            ", ".join(f"{s.name} ({s.rows:,} rows, {s.deleted:,} deleted)" for s in m.segments)
            or "none",
        ),
        ("created", m.created),
        (
            "bi-encoder",
            f"{m.encoder.name} ({m.dim}-d, max {m.encoder.max_seq_length} tokens, "
            f"{from_manifest(m.encoder)})",
        ),
        ("reranker", m.reranker),
        ("vectors", f"{m.backend.name} {m.backend.kind} ({params}), {m.similarity}"),
        ("language", m.language or "en (not recorded: an index older than detection)"),
        ("lexical", _lexical(m.lexical)),
        ("long documents", _chunking(m)),
        ("vector memory", _vector_memory(m)),
        ("disk per vector", _disk_per_vector(m)),
        ("merge policy", _merge_policy(m.merge or MergePolicy())),
        (
            "corpus",
            f"{m.corpus.path} (sha256 {m.corpus.sha256[:16]}..., "
            f"{m.corpus.skipped_lines} lines skipped)",
        ),
        ("files", f"{len(m.files)} ({_mb(sum(f.bytes for f in m.files.values()))})"),
    ]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, _escape(value))
    Console().print(table)


def _lexical(config: LexicalSection | None) -> str:
    if not config:
        return "none (dense search only)"
    settings = config.settings()
    rest = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "analyzer")
    if config.kind != "bm25":
        return f"{config.kind} ({rest})"
    return f"{config.kind} ({rest}); analyzer {_analyzer(settings.get('analyzer'))}"


def _analyzer(config: dict | None) -> str:
    """``zh v1 (t2s, bigrams, unigrams, user dictionary 1a2b3c4d...)``."""
    if not config:
        return "en (an index older than analyzers)"
    flags = [k for k, v in config.items() if v is True]
    if sha := config.get("user_dict_sha256"):
        flags.append(f"user dictionary {sha[:8]}...")
    return f"{config['name']} v{config['version']}" + (f" ({', '.join(flags)})" if flags else "")


def _chunking(m: Manifest) -> str:
    """How long documents were indexed, and how many (over every segment, deleted rows too)."""
    c = m.passage_counts()
    config = m.chunking
    if config is None:
        how = "not chunked"
    elif config.enabled:
        how = f"chunked into passages of {config.tokens} tokens, {config.overlap} overlap"
    else:
        how = f"not chunked (--no-chunk): cut to {config.tokens} tokens"
    return (
        f"{how}; {c['chunked']:,} documents split into passages, {c['passages']:,} vectors, "
        f"{c['truncated']:,} documents truncated"
    )


def _vector_memory(m: Manifest) -> str:
    """Bytes per row of the vector indexes (what is held in RAM) and of the float vectors."""
    rows = m.passage_counts()["passages"]
    held = disk_usage(m)["vector index"]
    if not held:
        return f"none but the float32 vectors, {4 * m.dim:,} bytes/vector (mmap, searched exactly)"
    per_row = f"{held / rows:,.0f}" if rows else "-"
    return f"{per_row} bytes/vector in the index; float32 vectors {4 * m.dim:,} on disk (mmap)"


def _disk_per_vector(m: Manifest) -> str:
    """Bytes on disk per vector (passage) of each kind of data."""
    rows = m.passage_counts()["passages"]
    usage = disk_usage(m)
    if not rows:
        return "-"
    parts = [f"{kind} {n / rows:,.0f}" for kind, n in usage.items() if n]
    return f"{sum(usage.values()) / rows:,.0f} bytes: " + ", ".join(parts)


def _merge_policy(p: MergePolicy) -> str:
    if p.kind == "none":
        return "none (segments merge only on compact)"
    return (
        f"tiered ({p.segments_per_tier} segments per tier, {p.max_merge_at_once} merged at once, "
        f"floor {p.floor_docs:,} docs, max {p.max_segment_docs:,} docs, "
        f"deletes over {p.deletes_pct}% rewritten)"
    )


def print_commit(report: CommitReport, as_json: bool = False) -> None:
    """The summary after ``searchkit add``, ``delete`` or ``compact``."""
    if as_json:
        _dump({**asdict(report), "path": str(report.path)})
        return
    changes = [
        f"{n:,} {what}"
        for what, n in (
            ("added", report.added),
            ("replaced", report.replaced),
            ("unchanged", report.unchanged),
            ("deleted", report.deleted),
            ("split into passages", report.chunked),
            ("truncated to what the encoder reads", report.truncated),
            ("rewritten by compact", report.rewritten),
            ("tombstones purged", report.purged),
        )
        if n
    ]
    console = Console()
    console.print(
        f"{report.path}: version {report.version}, {report.documents:,} live documents, "
        f"{report.tombstones:,} deleted awaiting compact"
        + (f"; {', '.join(changes)}" if changes else "; no change")
        + f" ({report.seconds:.1f}s)",
        markup=False,
    )
    _print_skipped(console, report.skipped_count, report.skipped)
    if report.missing:
        shown = ", ".join(report.missing[:SKIPPED_SHOWN])
        more = len(report.missing) - min(len(report.missing), SKIPPED_SHOWN)
        console.print(
            f"Not in the index (nothing to delete): {shown}"
            + (f" and {more} more" if more else ""),
            markup=False,
        )


def print_verified(path: Path, manifest: Manifest, as_json: bool = False) -> None:
    """The result of ``searchkit verify``."""
    if as_json:
        _dump({"index": str(path), "ok": True, "version": manifest.version,
               "documents": manifest.documents, "deleted": manifest.deleted,
               "files": len(manifest.files)})  # fmt: skip
        return
    Console().print(
        f"{path}: OK, version {manifest.version}: {len(manifest.files)} files match their "
        f"sha256 and sizes; {len(manifest.segments)} segments agree on row counts; "
        f"{manifest.documents:,} live documents, {manifest.deleted:,} deleted.",
        markup=False,
    )


def print_eval(result: EvalResult) -> None:
    """The metrics table of ``searchkit eval``: a row per measure, a column per stage."""
    from searchkit.eval.metrics import METRICS

    table = Table()
    table.add_column("measure")
    for stage in result.metrics:
        label = "retrieval" if stage == "retrieval" else f"rerank top {result.candidates}"
        table.add_column(label, justify="right")
    for name in METRICS:
        table.add_row(name, *(f"{m[name]:.4f}" for m in result.metrics.values()))
    for p in ("p50", "p95", "p99"):
        table.add_row(
            f"latency {p} ms", *(f"{result.latency_ms[s][p]:.1f}" for s in result.metrics)
        )
    console = Console()
    console.print(f"{result.name}: {result.queries} queries on {result.index}", markup=False)
    s = result.search
    how = f"k={s.get('rrf_k'):g}" if s.get("fusion") == "rrf" else f"dense={s.get('weight')}"
    fused = f", fusion {s.get('fusion')} {how}" if s.get("mode") == "hybrid" else ""
    console.print(f"first stage: {s.get('mode')}{fused}", markup=False)
    console.print(table)
    if result.reranker:
        console.print(f"reranker: {result.reranker}", markup=False)
    if t := result.truncation:
        console.print(
            f"reranker truncated {t['truncated']:,} of {t['pairs']:,} (query, passage) pairs "
            f"to {t['max_tokens']} tokens",
            markup=False,
        )
        if t.get("margin") is not None:
            console.print(
                f"early exit (margin {t['margin']}): {t['early_exit']:,} of {result.queries:,} "
                "queries kept retrieval order",
                markup=False,
            )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)


def print_suite(result: SuiteResult) -> None:
    """The tables of ``searchkit eval --suite``: nDCG@10 per dataset and setting, then each
    setting's mean and its margin over max(dense, lexical), mean and worst."""
    console = Console()
    table = Table(title=f"nDCG@10 on the {result.role} splits")
    table.add_column("dataset")
    for s in result.settings:
        table.add_column(s.label, justify="right")
    for name, d in result.datasets.items():
        table.add_row(
            f"{name} ({d['queries']})",
            *(f"{d['metrics'][s.label]['nDCG@10']:.4f}" for s in result.settings),
        )
    summary = result.summary()
    for label, key in (
        ("mean", "mean"),
        ("margin mean", "margin_mean"),
        ("margin worst", "margin_worst"),
    ):
        table.add_row(
            label,
            *(
                "-"
                if summary[s.label][key] is None
                else f"{summary[s.label][key]:+.4f}"
                if "margin" in key
                else f"{summary[s.label][key]:.4f}"
                for s in result.settings
            ),
        )
    console.print(table)
    console.print("margin: nDCG@10 - max(dense, lexical) on the dataset", markup=False)


def print_training(report: TrainReport, as_json: bool = False) -> None:
    """The summary after ``searchkit train-reranker`` / ``train-embedder``."""
    if as_json:
        _dump(report.to_dict())
        return
    console = Console()
    console.print(f"model: {_escape(report.model)} (from {_escape(report.base)})")
    console.print(
        f"trained on {report.train_queries} queries, {report.rows} rows, {report.steps} steps; "
        f"evaluated on {report.eval_queries} queries"
    )
    table = Table("nDCG@10", "value")
    for name, value in report.ndcg10.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    console.print(f"wall clock: {times}")
    if report.reindexed:
        console.print(f"re-embedded index: {_escape(report.reindexed)}")
