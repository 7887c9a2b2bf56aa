"""Shared by the benchmark scripts: options, machine info, timing, tables and JSON.

Every script parses its options with :func:`make_parser` / :func:`start`, times with
:func:`timed` and :func:`percentiles`, and ends with :func:`report`, which prints a header
(machine, date, exact command line) and the tables on stdout and writes the same figures as
JSON to ``benchmarks/results/<name>.json`` (or ``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

# The hub is unreachable on the machines this runs on; never wait for it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BEIR_ROOT = SHARED / "data" / "beir"
DEFAULT_DATASET = BEIR_ROOT / "scifact"
DEFAULT_RERANKER = SHARED / "models" / "reranker"
RESULTS = REPO / "benchmarks" / "results"


def make_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """A parser with the options every script takes: --json, --limit, --threads."""
    parser = argparse.ArgumentParser(
        prog=f"benchmarks/{name}.py",
        description=(description or "").split("\n\n")[0],
        formatter_class=_Help,
    )
    parser.add_argument(
        "--json", type=Path, default=None, help=f"results file (default: {RESULTS.name}/NAME.json)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N documents and N queries (smoke)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch, faiss and BLAS threads (default: theirs)"
    )
    return parser


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, "", False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def add_dataset(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """--dataset (one BEIR folder, or several with ``many``) and --split."""
    if many:
        parser.add_argument(
            "--dataset",
            type=Path,
            nargs="+",
            default=None,
            help=f"BEIR folders (default: every dataset under {BEIR_ROOT})",
        )
    else:
        parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR folder")
    parser.add_argument("--split", default="test", help="qrels split")


def add_index(parser: argparse.ArgumentParser) -> None:
    """--index: the index to measure (default: the dataset's, built when missing)."""
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="index folder (default: indexes/DATASET; built when it does not hold it)",
    )


def add_reranker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reranker", type=Path, default=DEFAULT_RERANKER, help="CrossEncoder folder"
    )


def int_list(text: str) -> list[int]:
    """argparse type for comma-separated integers: ``"16,32,64"``."""
    return [int(part) for part in text.split(",") if part.strip()]


def start(parser: argparse.ArgumentParser, name: str) -> tuple[argparse.Namespace, dict]:
    """Parse the command line, apply --threads, and make the results header."""
    args = parser.parse_args()
    apply_threads(args.threads)
    header = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "machine": machine_info(),
        "software": software_info(),
    }
    return args, header


def apply_threads(threads: int | None) -> None:
    """Set torch's, faiss' and BLAS' thread counts (None leaves the libraries' defaults).

    On a machine busy with other work, fewer threads than cores avoids threads waiting on
    each other for whole scheduler time slices, which inflates latencies many times over.
    """
    if threads is None:
        return
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    threadpool_limits(limits=threads)


def machine_info() -> dict[str, Any]:
    """CPU, memory, platform, load and torch threads: what the figures depend on."""
    import torch

    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gb": round(pages / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        # a busy machine skews every timing: record how busy it was at the start
        "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
    }


def software_info() -> dict[str, Any]:
    """Versions of searchkit (and its git commit) and of the libraries that do the work."""
    from importlib.metadata import PackageNotFoundError, version

    from searchkit import __version__

    info: dict[str, Any] = {
        "searchkit": __version__,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    # read from package metadata: importing sentence-transformers alone takes seconds
    for package in ("torch", "sentence-transformers", "faiss-cpu", "hnswlib", "numpy", "bm25s"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def note(message: str) -> None:
    """Progress and remarks go to stderr; stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


# --- timing -------------------------------------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds)`` on the monotonic performance clock."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95 and p99 in milliseconds of durations in seconds (as searchkit eval)."""
    from searchkit.eval.metrics import percentiles_ms

    return {"n": len(seconds), **percentiles_ms(list(seconds))} if seconds else {"n": 0}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process: its own memory, models and peak RSS."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(fn, *args).result()


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def cycle(items: Sequence[str], n: int) -> list[str]:
    """``n`` items, repeating ``items`` from the start as needed."""
    return [items[i % len(items)] for i in range(n)] if items else []


# --- output -------------------------------------------------------------------------------


@dataclass
class Table:
    """A titled table for stdout; cells are formatted by :func:`cell`."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))


def cell(value: Any) -> str:
    """Numbers to 4 significant digits (thousands grouped), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def report(
    name: str, args: argparse.Namespace, header: dict, tables: list[Table], results: dict
) -> Path:
    """Print the header and tables on stdout; write header, options and results as JSON."""
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
    m = header["machine"]
    sw = header["software"]
    dirty = " dirty" if sw["git_dirty"] else ""
    console.print(
        f"[bold]{name}[/bold]  {header['date']}  searchkit {sw['searchkit']} "
        f"({sw['git_commit']}{dirty}), torch {sw['torch']}, faiss {sw['faiss-cpu']}"
    )
    console.print(f"command: {header['command']}", markup=False, highlight=False)
    console.print(
        f"machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GiB, "
        f"{m['platform']}, torch threads {m['torch_threads']}, "
        f"load average {m['load_average_1m_5m_15m']}",
        markup=False,
        highlight=False,
    )
    for table in tables:
        shown = RichTable(title=table.title, title_justify="left")
        for i, column in enumerate(table.columns):
            shown.add_column(column, justify="left" if i == 0 else "right")
        for row in table.rows:
            shown.add_row(*(cell(v) for v in row))
        console.print(shown)
        if table.note:
            console.print(table.note, markup=False, highlight=False)
    path = args.json or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**header, "options": vars(args), "results": results}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    note(f"results written to {path}")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):  # manifest sections, SearchOptions
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
