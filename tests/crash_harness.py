"""Kill a searchkit writer with SIGKILL at chosen file-system events (used by test_crash.py).

Run as ``python tests/crash_harness.py PLAN.json RESULTS.json``. The harness imports searchkit
and loads the bi-encoder once (torch, faiss and tokenizers single-threaded, so forking is safe),
then for every job of the plan:

1. copies the job's start index and runs the job's CLI command (``index ... --force``, ``add``,
   ``delete``, ``compact``) in a forked child with no kill, logging every *event*: a call that
   changes the file system (``os.rename``, ``os.replace``, ``os.fsync``, ``os.unlink``,
   ``os.rmdir``, ``os.mkdir``, ``os.ftruncate``, ``os.pwrite``, ``shutil.rmtree``, ``open`` for
   writing, Parquet writes, ``faiss.write_index``, hnswlib's save, ``np.save``) or one
   of searchkit's commit steps (``commit.install_segment``, ``commit.switch``,
   ``Manifest.write``, ``segment.write_segment``, ...). That copy is the "after" state; the
   number of events is E.
2. chooses kill points ``(n, when)``: just before the n-th event starts, or just after it
   returns (every one when there are few, else ``max_points`` spread evenly over them);
3. for each kill point, copies the start index again and forks a child that runs the same
   command and sends itself SIGKILL at that point (two children at a time).

The checks (does the index open, verify, and equal the state before or after?) are done by the
test, in its own process. Events are seen through ``sys.setprofile``, so the code under test
runs unchanged; only the model loader is memoized so that children do not reload the model.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # no Rust thread pool to break across fork
os.environ["OMP_NUM_THREADS"] = "1"

C_EVENTS = {
    "rename",
    "replace",
    "fsync",
    "fdatasync",
    "unlink",
    "remove",
    "rmdir",
    "mkdir",
    "ftruncate",
    "truncate",
    "pwrite",
    "link",
    "symlink",
}
CHILD_TIMEOUT = 120.0


_real_open = builtins.open


def _traced_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    """``open``, visible to the profiler (a C call's arguments are not)."""
    return _real_open(file, mode, *args, **kwargs)


def _python_events() -> dict[Any, str]:
    """Code object -> event name, for the Python functions that count as events."""
    import faiss
    import numpy as np
    import pyarrow.parquet as pq

    from searchkit.backends.hnsw import HnswIndex
    from searchkit.index import commit, fsio, lock, manifest, segment, sharded
    from searchkit.index import docstore as store
    from searchkit.ingest import build
    from searchkit.ingest import sharded as sharded_writer

    functions = {
        "shutil.rmtree": shutil.rmtree,
        "ParquetWriter.__init__": pq.ParquetWriter.__init__,
        "ParquetWriter.write_table": pq.ParquetWriter.write_table,
        "ParquetWriter.close": pq.ParquetWriter.close,
        "pq.write_table": pq.write_table,
        "np.save": getattr(np.save, "_implementation", np.save),
        "faiss.write_index": faiss.write_index,
        # hnswlib's save_index is a pybind11 method: called through a bound method object, it
        # raises no c_call event, so its caller stands for it
        "hnswlib save_index (HnswIndex.save)": HnswIndex.save,
        "commit.staging_segment": commit.staging_segment,
        "commit.install_segment": commit.install_segment,
        "commit.stage_deletions": commit.stage_deletions,
        "commit.switch": commit.switch,
        "commit.collect_garbage": commit.collect_garbage,
        "commit.publish": commit.publish,
        "Manifest.write": manifest.Manifest.write,
        "fsio.write_atomic": fsio.write_atomic,
        "segment.write_segment": segment.write_segment,
        "segment.write_deletions": segment.write_deletions,
        "DocStoreWriter.write": store.DocStoreWriter.write,
        "build._commit": build._commit,
        "build.staging_dir": build.staging_dir,
        "sharded.collect_garbage": sharded.collect_garbage,
        "ShardedWriter: link a shard folder": sharded_writer._link_tree,
        "ShardedWriter: switch the parent": sharded_writer._Change._switch,
        "WriterLock.acquire": lock.WriterLock.acquire,
        "WriterLock.release": lock.WriterLock.release,
        "open": _traced_open,
    }
    return {fn.__code__: name for name, fn in functions.items()}


def _where(frame: Any) -> str:
    """The innermost searchkit frame at or above ``frame``: ``module.function:line``."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if "/searchkit/" in filename and "/tests/" not in filename:
            return f"{Path(filename).stem}.{frame.f_code.co_name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class KillSwitch:
    """A profile function that numbers events and SIGKILLs the process at one of them."""

    def __init__(self, codes: dict[Any, str], log_fd: int, target: int | None, when: str) -> None:
        self.codes = codes
        self.log_fd = log_fd
        self.target = target
        self.when = when
        self.count = 0
        self.pending: tuple[Any, Any] | None = None  # (frame, C function) whose return kills

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = self.codes.get(frame.f_code)
            if name is None:
                return
            if name == "open":
                mode = str(frame.f_locals.get("mode", "r"))
                if not any(c in mode for c in "wax+"):
                    return
                name = f"open({Path(str(frame.f_locals.get('file'))).name}, {mode})"
            self._event(name, _where(frame.f_back), (frame, None))
        elif event == "c_call":
            name = getattr(arg, "__name__", "")
            owner = getattr(arg, "__self__", None)
            if name in C_EVENTS and getattr(owner, "__name__", None) == "posix":
                self._event(f"os.{name}", _where(frame), (frame, arg))
        elif self.pending is not None:
            pending_frame, pending_function = self.pending
            if pending_frame is not frame:
                return
            if event == "return" and pending_function is None:
                self._die()
            if event in ("c_return", "c_exception") and pending_function is arg:
                self._die()

    def _event(self, name: str, where: str, key: tuple[Any, Any]) -> None:
        self.count += 1
        line = json.dumps(f"{name} @ {where}".replace(f"-{os.getpid()}", "-PID"))
        os.write(self.log_fd, (line + "\n").encode())
        if self.count == self.target:
            if self.when == "before":
                self._die()
            self.pending = key

    def _die(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def _child(argv: list[str], folder: Path, target: int | None, when: str, codes: dict) -> None:
    """Run one CLI command in this (forked) process; SIGKILL at the target event."""
    try:
        out = os.open(folder / "output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        log_fd = os.open(folder / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        from searchkit.cli import app

        sys.argv = ["searchkit", argv[0]]
        builtins.open = _traced_open
        switch = KillSwitch(codes, log_fd, target, when)
        sys.setprofile(switch)
        try:
            code = app(argv, prog_name="searchkit", standalone_mode=False) or 0
        finally:
            sys.setprofile(None)
            builtins.open = _real_open
    except BaseException as err:  # noqa: BLE001 - report anything, never return to the parent
        try:
            os.write(2, f"child failed: {err!r}\n".encode())
        finally:
            os._exit(71)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def _prepare(start: str | None, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index = folder / "idx"
    if start is not None:
        shutil.copytree(start, index)
    return index


def _argv(job: dict, index: Path) -> list[str]:
    return [a.replace("{index}", str(index)) for a in job["argv"]]


def _events(folder: Path) -> list[str]:
    path = folder / "events.jsonl"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


ATOMIC_STEPS = ("os.rename ", "os.replace ")  # the steps that make a change visible


def kill_points(events: list[str], max_points: int) -> list[tuple[int, str]]:
    """Kill points ``(n, "before"|"after")``: all of them when there are at most
    ``max_points``; else before and after every rename, plus others spread evenly."""
    every = [(n, when) for n in range(1, len(events) + 1) for when in ("before", "after")]
    if len(every) <= max_points:
        return every
    chosen = {(n, w) for n, w in every if events[n - 1].startswith(ATOMIC_STEPS)}
    rest = [p for p in every if p not in chosen]
    room = max(max_points - len(chosen), 1)
    chosen |= {rest[round(i * (len(rest) - 1) / max(room - 1, 1))] for i in range(room)}
    return sorted(chosen, key=lambda p: (p[0], p[1] == "after"))


def _run_children(tasks: list[dict], codes: dict, parallel: int) -> None:
    """Fork a child per task, ``parallel`` at a time; fills each task's ``status``."""
    waiting = list(tasks)
    running: dict[int, tuple[dict, float]] = {}
    while waiting or running:
        while waiting and len(running) < parallel:
            task = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(task["argv"], Path(task["folder"]), task["n"], task["when"], codes)
            running[pid] = (task, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for child, (task, started) in list(running.items()):
                if time.monotonic() - started > CHILD_TIMEOUT:
                    os.kill(child, signal.SIGKILL)
                    task["timed_out"] = True
            time.sleep(0.005)
            continue
        task, started = running.pop(pid)
        task["seconds"] = round(time.monotonic() - started, 3)
        if task.get("timed_out"):
            task["status"] = "timeout"
        elif os.WIFSIGNALED(status):
            task["status"] = f"signal {os.WTERMSIG(status)}"
        else:
            task["status"] = f"exit {os.WEXITSTATUS(status)}"


def run_plan(plan: dict) -> dict:
    codes = _python_events()
    parallel = int(plan.get("parallel", 2))
    results: dict[str, Any] = {}
    # 1. the runs without a kill: count the events, keep the "after" state
    counts = []
    for job in plan["jobs"]:
        folder = Path(job["work"]) / "after"
        index = _prepare(job.get("start"), folder)
        counts.append(
            {
                "job": job["name"],
                "argv": _argv(job, index),
                "folder": str(folder),
                "n": None,
                "when": "",
            }
        )
    started = time.monotonic()
    _run_children(counts, codes, parallel)
    # 2. the kill points
    kills = []
    for job, count in zip(plan["jobs"], counts, strict=True):
        events = _events(Path(count["folder"]))
        results[job["name"]] = {
            "after": str(Path(count["folder"]) / "idx"),
            "after_status": count["status"],
            "after_output": (Path(count["folder"]) / "output.txt").read_text(errors="replace"),
            "events": events,
            "points": [],
        }
        if count["status"] != "exit 0":
            continue
        for n, when in kill_points(events, int(job["max_points"])):
            folder = Path(job["work"]) / f"k{n:03d}-{when}"
            index = _prepare(job.get("start"), folder)
            task = {"job": job["name"], "argv": _argv(job, index), "folder": str(folder)}
            kills.append({**task, "n": n, "when": when})
    _run_children(kills, codes, parallel)
    for task in kills:
        result = results[task["job"]]
        seen = _events(Path(task["folder"]))
        result["points"].append(
            {
                "n": task["n"],
                "when": task["when"],
                "event": result["events"][task["n"] - 1],
                "path": str(Path(task["folder"]) / "idx"),
                "status": task["status"],
                "seconds": task["seconds"],
                # the child met the same events as the run without a kill, up to its death
                # (a kill after an event comes after the events nested in it)
                "same_events": len(seen) >= task["n"] and seen == result["events"][: len(seen)],
            }
        )
    results["_seconds"] = round(time.monotonic() - started, 2)
    results["_children"] = len(counts) + len(kills)
    return results


def _setup(plan: dict) -> None:
    """Load searchkit and the model once, single-threaded, with a memoized model loader; run
    every job once here, unobserved, so that children do not pay for first-call imports."""
    import contextlib
    import functools
    import io

    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from searchkit.cli import app
    from searchkit.inference.runtimes import load

    load.load_on_runtime = functools.cache(load.load_on_runtime)
    for job in plan["jobs"]:
        folder = Path(job["work"]) / "warm-up"
        index = _prepare(job.get("start"), folder)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = app(_argv(job, index), prog_name="searchkit", standalone_mode=False)
        if code:
            raise SystemExit(f"warm-up run of {job['name']} failed with exit code {code}")
        shutil.rmtree(folder)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    started = time.monotonic()
    _setup(plan)
    results = run_plan(plan)
    results["_setup_seconds"] = round(time.monotonic() - started - results["_seconds"], 2)
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
