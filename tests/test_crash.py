"""Crash safety for real: writers killed with SIGKILL at many points of ``index --force``,
``add``, ``delete`` and ``compact`` leave the index exactly as it was or exactly as the change
makes it.

tests/crash_harness.py runs each CLI command in forked children that SIGKILL themselves just
before or just after the n-th file-system event (rename, replace, fsync, unlink, rmtree, open
for writing, Parquet/FAISS/hnswlib writes, searchkit's commit steps). This file builds the
start indexes, runs the harness once, then checks every killed index in this process:

* it opens (``Searcher.open(verify=True)``) and passes ``verify_index``;
* its logical state (version, counts, segments, backend, encoder and every live document's id,
  title, text and metadata) equals the state before the command or the state after it (the
  result of the same command run without a kill, itself checked against the corpora);
* the next writer gets the lock, commits, and removes every leftover (no hidden ``.tmp`` or
  ``.build`` names remain, nothing the manifest does not name);
* a known query still finds its document.

Set SEARCHKIT_CRASH_REPORT=path.json to get the numbers as JSON; SEARCHKIT_CRASH_POINTS=N sets
the kill points per command (default below; 1000 means every event, before and after);
SEARCHKIT_CRASH_JOBS=sharded runs only the jobs whose name contains that text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import searchkit.ingest.build
from searchkit import Document, Searcher, build_index
from searchkit.index.manifest import MANIFEST, Manifest
from searchkit.index.sharded import ShardedManifest, is_sharded
from searchkit.inference.encoder import Encoder
from searchkit.inference.resolve import DEFAULT_ENCODER
from searchkit.ingest.sharded import create_sharded
from searchkit.ingest.writer import IndexWriter
from searchkit.query.searcher import verify_index
from tests.conftest import REPO, tiny_records, write_jsonl

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).with_name("crash_harness.py")

ADD_RECORDS = [
    {
        "_id": "glacier",
        "title": "Glaciers",
        "text": "Glaciers are slow rivers of ice that carve U-shaped valleys into mountains.",
        "topic": "glacier",
        "year": 2020,
    },
    {
        "_id": "origami",
        "title": "Origami",
        "text": "Origami is the Japanese art of folding a single sheet of paper into a figure.",
        "topic": "origami",
        "year": 2021,
    },
    {  # changed text and year
        "_id": "bitcoin",
        "title": "Bitcoin",
        "text": "Bitcoin mining uses a lot of electricity to secure the blockchain.",
        "topic": "bitcoin",
        "year": 2030,
    },
    {  # changed title
        "_id": "coffee",
        "title": "Espresso",
        "text": "Espresso is brewed by forcing hot water through finely ground coffee beans at high pressure.",  # noqa: E501
        "topic": "coffee",
        "year": 2009,
    },
    next(r for r in tiny_records() if r["_id"] == "tides"),  # unchanged: not re-embedded
]
DELETE_IDS = ["chess", "volcano", "glacier", "nope"]  # an original, an added, a missing id
REBUILD_RECORDS = [
    {**r, "text": "Python lists keep items in order; slicing copies part of a list."}
    if r["_id"] == "python"
    else r
    for r in tiny_records()
    if r["_id"] != "marathon"
] + [
    {
        "_id": "lighthouse",
        "title": "Lighthouses",
        "text": "A lighthouse warns ships away from rocks with a bright rotating lamp.",
        "year": 1990,
    }
]
KIWI = Document("kiwi", "Kiwi fruit is rich in vitamin C and grows on vines.", "Kiwi", {})
KNOWN_QUERY = ("why can't light escape from a black hole", "blackhole")  # in every state
KIWI_QUERY = "kiwi fruit vitamin C"


SHARDED = "sharded"  # a Job backend: a sharded index (faiss flat shards, no BM25)
SHARDS = 3


@dataclass(frozen=True)
class Job:
    backend: str
    op: str  # index (--force over the start), index-new (no index yet), add, delete, compact
    points: int  # kill points to try (all when the command has fewer)

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.op}"


JOBS = [
    Job("faiss", "index", 40),
    Job("faiss", "add", 40),
    Job("faiss", "delete", 30),
    Job("faiss", "compact", 40),
    # an add whose commit also merges both segments (the merge policy's steps killed too)
    Job("faiss", "add-merge", 40),
    Job("faiss", "index-new", 12),
    Job("hnswlib", "index", 12),
    Job("hnswlib", "add", 12),
    Job("hnswlib", "delete", 8),
    Job("hnswlib", "compact", 12),
    # a 3-shard index (searchkit.ingest.sharded): each change touches 2+ shards, whose new
    # folders must not show before the parent manifest switches
    Job(SHARDED, "add", 30),
    Job(SHARDED, "delete", 20),
    Job(SHARDED, "compact", 20),
]
LABEL = {"index": "index --force", "index-new": "index (new)"}
# merge the 2 segments of the v1 start and the add into one (one tier: floor 1,000 documents)
EAGER = ["--segments-per-tier", "1", "--max-merge-at-once", "100", "--floor-docs", "1000"]


def docs_of(records: list[dict]) -> dict[str, tuple[str, str, dict]]:
    """id -> (title, text, metadata), as the corpus reader makes them."""
    out = {}
    for r in records:
        meta = {k: v for k, v in r.items() if k not in {"_id", "title", "text"}}
        out[r["_id"]] = (r.get("title", ""), r["text"], meta)
    return out


def doc_key(id_: str, title: str, text: str, metadata: dict) -> tuple[str, str, str, str]:
    return (id_, title, text, json.dumps(metadata, sort_keys=True))


def logical_state(index: Path) -> dict[str, Any] | None:
    """What a reader can observe of the index (None: there is no index folder at all).

    Raises whatever opening or verifying raises (CorruptIndex, IndexNotFound, ...).
    """
    if not index.exists():
        return None
    s = Searcher.open(index, verify=True)
    m = s.manifest
    assert verify_index(index).version == m.version
    docs = []
    if isinstance(m, ShardedManifest):  # the shard folders the parent pins, as readers do
        views = [shard.view for shard in s.stage._shards.shards]
        assert [v.manifest.version for v in views] == [e.version for e in m.shards]
    else:
        views = [s.stage.view]
    for seg in (seg for view in views for seg in view.segments):
        rows = np.arange(seg.entry.rows) if seg.live is None else np.flatnonzero(seg.live)
        docs.extend(doc_key(d.id, d.title, d.text, d.metadata) for d in seg.docs.take(rows))
    docs.sort()
    assert [d[0] for d in docs] == sorted(s.ids()) and len(docs) == len(s)
    return {
        "version": m.version,
        "documents": m.documents,
        "tombstones": m.deleted,
        "segments": [(e.name, e.rows, e.deleted) for e in m.segments],
        "backend": m.backend,
        "encoder": m.encoder.name,
        "docs": docs,
    }


def leftovers(index: Path) -> list[str]:
    """Names in or beside the index that its manifest does not account for."""
    if is_sharded(index):
        m: Manifest = ShardedManifest.read(index)
        files = {MANIFEST, *(e.path for e in m.files.values())}
        folders = {"shards", *(str(Path(s.path).parent) for s in m.shards)}  # type: ignore[attr-defined]
        for shard in m.shards:  # type: ignore[attr-defined]
            inner = Manifest.read(index / shard.path)
            folders |= {shard.path, f"{shard.path}/segments", f"{shard.path}/deletions"}
            folders |= {f"{shard.path}/segments/{e.name}" for e in inner.segments}
            folders |= {str(Path(f).parent) for f in files if f.startswith(f"{shard.path}/")}
    else:
        m = Manifest.read(index)
        files = {MANIFEST, *(e.path for e in m.files.values())}
        folders = {"segments", "deletions", *(f"segments/{s.name}" for s in m.segments)}
    found = [
        rel
        for p in index.rglob("*")
        if (rel := p.relative_to(index).as_posix()) not in (folders if p.is_dir() else files)
    ]
    lock = f".{index.name}.lock"
    found += [
        f"../{p.name}"
        for p in index.parent.iterdir()
        if p.name.startswith(f".{index.name}.") and p.name != lock
    ]
    return sorted(found)


def difference(state: dict | None, other: dict | None) -> str:
    if state is None or other is None:
        return f"{state and state['version']} vs {other and other['version']}"
    keys = [k for k in state if state[k] != other[k]]
    mine, theirs = set(state["docs"]), set(other["docs"])
    return (
        f"differs in {keys}; version {state['version']} vs {other['version']}; documents only "
        f"here {sorted(d[0] for d in mine - theirs)}, only there "
        f"{sorted(d[0] for d in theirs - mine)}"
    )


class MemoEncoder(Encoder):
    """The bi-encoder, remembering embeddings: the checks embed the same few texts again and
    again (the vectors are the model's; only the repeated forward passes are saved)."""

    def __init__(self) -> None:
        super().__init__(DEFAULT_ENCODER)
        self._memo: dict[tuple, np.ndarray] = {}

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        key = ("documents", *texts)
        if key not in self._memo:
            self._memo[key] = super().encode_documents(texts)
        if progress is not None:
            progress(len(texts))
        return self._memo[key].copy()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        key = ("queries", *texts)
        if key not in self._memo:
            self._memo[key] = super().encode_queries(texts)
        return self._memo[key].copy()


@dataclass
class Sweep:
    """Everything the harness did, and the reference states of each job."""

    root: Path
    results: dict[str, Any]
    before: dict[str, dict | None]
    base_corpus: Path
    encoder: MemoEncoder
    stats: dict[str, dict[str, Any]]
    harness_seconds: float


def _build_starts(root: Path, backend: str, corpora: dict[str, Path]) -> dict[str, Path]:
    """Version 1 (built), 2 (after add), 3 (after delete) of a tiny index (of a sharded one:
    2, 3, 4; its version 1 is empty)."""
    if backend == SHARDED:
        v1 = create_sharded(root / "v1" / "idx", SHARDS, lexical="none")
        with IndexWriter.open(v1) as w:
            w.add_corpus(corpora["base"])
    else:
        v1 = build_index(corpora["base"], root / "v1" / "idx", backend=backend, progress=False).path
    shutil.copytree(v1, root / "v2" / "idx")
    with IndexWriter.open(root / "v2" / "idx") as w:
        w.add_corpus(corpora["add"])
    shutil.copytree(root / "v2" / "idx", root / "v3" / "idx")
    with IndexWriter.open(root / "v3" / "idx") as w:
        w.delete(DELETE_IDS)
    return {"v1": v1, "v2": root / "v2" / "idx", "v3": root / "v3" / "idx"}


def _plan_job(job: Job, starts: dict[str, Path], corpora: dict[str, Path], work: Path) -> dict:
    points = int(os.environ.get("SEARCHKIT_CRASH_POINTS", job.points))
    b = ["--backend", job.backend, "--no-progress"]
    start, argv = {
        "index": ("v3", ["index", str(corpora["rebuild"]), "-o", "{index}", "--force", *b]),
        "index-new": (None, ["index", str(corpora["base"]), "-o", "{index}", *b]),
        "add": ("v1", ["add", "{index}", str(corpora["add"]), "--no-progress"]),
        "add-merge": ("v1", ["add", "{index}", str(corpora["add"]), "--no-progress", *EAGER]),
        "delete": ("v2", ["delete", "{index}", "--ids", ",".join(DELETE_IDS)]),
        "compact": ("v3", ["compact", "{index}"]),
    }[job.op]
    return {
        "name": job.name,
        "start": str(starts[start]) if start else None,
        "argv": argv,
        "max_points": points,
        "work": str(work / job.name),
    }


def selected_jobs() -> list[Job]:
    return [j for j in JOBS if os.environ.get("SEARCHKIT_CRASH_JOBS", "") in j.name]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    root = tmp_path_factory.mktemp("crash")
    corpora = {
        "base": write_jsonl(root / "base.jsonl", tiny_records()),
        "add": write_jsonl(root / "add.jsonl", ADD_RECORDS),
        "rebuild": write_jsonl(root / "rebuild.jsonl", REBUILD_RECORDS),
    }
    jobs = selected_jobs()
    starts = {b: _build_starts(root / b, b, corpora) for b in sorted({j.backend for j in jobs})}
    plan = {
        "parallel": 2,
        "jobs": [_plan_job(j, starts[j.backend], corpora, root / "work") for j in jobs],
    }
    (root / "plan.json").write_text(json.dumps(plan, indent=1))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(HARNESS), str(root / "plan.json"), str(root / "results.json")],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    harness_seconds = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail(f"crash harness failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    results = json.loads((root / "results.json").read_text())
    before = {
        j["name"]: logical_state(Path(j["start"])) if j["start"] else None for j in plan["jobs"]
    }
    encoder = MemoEncoder()
    encoder.model  # noqa: B018 - load once; every check below shares it
    s = Sweep(root, results, before, corpora["base"], encoder, {}, harness_seconds)
    yield s
    _summarize(s)


def _summarize(s: Sweep) -> None:
    if not s.stats:
        return
    total = {k: sum(st[k] for st in s.stats.values()) for k in ("kill_points", "before", "after")}
    broken = sum(st["failed"] for st in s.stats.values())
    per = "; ".join(
        f"{name} {st['kill_points']} ({st['before']} before/{st['after']} after"
        + (f"/{st['failed']} FAILED" if st["failed"] else "")
        + f", of {st['events']} events)"
        for name, st in s.stats.items()
    )
    print(
        f"\ncrash sweep: {total['kill_points']} SIGKILL points, {total['kill_points']} killed "
        f"indexes checked: {total['before']} before, {total['after']} after, {broken} failed "
        f"[{per}]; harness {s.harness_seconds:.0f}s "
        f"({s.results['_children']} children, setup {s.results['_setup_seconds']:.0f}s), "
        f"checks {sum(st['check_seconds'] for st in s.stats.values()):.0f}s"
    )
    if path := os.environ.get("SEARCHKIT_CRASH_REPORT"):
        report = {
            "kill_points": total["kill_points"],
            "states_checked": total["kill_points"],
            "before": total["before"],
            "after": total["after"],
            "failed": broken,
            "harness_seconds": round(s.harness_seconds, 1),
            "harness_children": s.results["_children"],
            "jobs": s.stats,
        }
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def expected_after(job: Job) -> tuple[int, dict[str, tuple[str, str, dict]]]:
    """The version and documents the command must produce, from the corpora alone."""
    added = {**docs_of(tiny_records()), **docs_of(ADD_RECORDS)}
    deleted = {k: v for k, v in added.items() if k not in DELETE_IDS}
    return {
        "index": (4, docs_of(REBUILD_RECORDS)),
        "index-new": (1, docs_of(tiny_records())),
        "add": (2, added),
        "add-merge": (2, added),
        "delete": (3, deleted),
        "compact": (4, deleted),
    }[job.op]


def shards_touched(job: Job, index: Path) -> set[int]:
    """The shards a sharded job changes (its ids routed by the index's hash)."""
    routing = ShardedManifest.read(index).routing
    assert routing is not None
    ids = {"add": [r["_id"] for r in ADD_RECORDS[:4]], "delete": DELETE_IDS[:3]}.get(job.op)
    return {routing.shard_of(i) for i in ids} if ids else set(range(SHARDS))


def next_writer(s: Sweep, job: Job, index: Path, state: dict | None) -> list[str]:
    """The next writer works on a killed index and tidies it; a query finds its document."""
    problems = []
    if state is None:  # a new index killed before it existed: build it again
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(searchkit.ingest.build, "Encoder", lambda *args, **kwargs: s.encoder)
            build_index(s.base_corpus, index, backend=job.backend, progress=False)
        version, docs = 1, docs_of(tiny_records())
    else:
        with IndexWriter.open(index) as w:
            w.encoder = s.encoder
            report = w.upsert([KIWI])
        if report.added != 1:
            problems.append(f"the next upsert added {report.added}, not 1")
        version = state["version"] + 1
        docs = {d[0]: (d[1], d[2], json.loads(d[3])) for d in state["docs"]}
        docs[KIWI.id] = (KIWI.title, KIWI.text, KIWI.metadata)
    after = logical_state(index)
    assert after is not None
    if after["version"] != version:
        problems.append(f"the next commit made version {after['version']}, not {version}")
    if after["docs"] != sorted(doc_key(k, *v) for k, v in docs.items()):
        problems.append("the next commit's documents are wrong")
    if extra := leftovers(index):
        problems.append(f"leftovers after the next commit: {extra}")
    searcher = Searcher.open(index)
    searcher.encoder = s.encoder
    query, want = KNOWN_QUERY
    known, kiwi = searcher.search_batch([query, KIWI_QUERY], k=1, rerank=False)
    if (got := known[0].id) != want:
        problems.append(f"query {query!r} found {got}, not {want}")
    if state is not None and kiwi[0].id != KIWI.id:
        problems.append(f"the document added after the crash is not found ({kiwi[0].id})")
    return problems


@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_a_killed_writer_leaves_the_state_before_or_after(sweep, job):
    if job not in selected_jobs():
        pytest.skip("not in SEARCHKIT_CRASH_JOBS")
    started = time.monotonic()
    result = sweep.results[job.name]
    assert result["after_status"] == "exit 0", result["after_output"]
    before = sweep.before[job.name]
    after = logical_state(Path(result["after"]))
    assert after is not None
    version, docs = expected_after(job)
    if job.backend == SHARDED:  # created empty (version 1), then the base corpus added
        version += 1
        assert len(shards_touched(job, Path(result["after"]))) >= 2
    assert after["version"] == version
    assert after["docs"] == sorted(doc_key(k, *v) for k, v in docs.items())
    assert leftovers(Path(result["after"])) == []
    assert before != after
    if job.op == "add-merge":
        assert len(Manifest.read(Path(result["after"])).segments) == 1

    points = result["points"]
    counts = {"before": 0, "after": 0}
    failures = []
    for point in points:
        index = Path(point["path"])
        where = f"kill {point['when']} event {point['n']} ({point['event']})"
        problems = []
        if point["status"] != "signal 9":
            problems.append(f"the child was not killed: {point['status']}")
        if not point["same_events"]:
            problems.append("the child's events differ from the run without a kill")
        try:
            state = logical_state(index)
        except Exception as err:  # noqa: BLE001 - every kill point is reported
            failures.append(f"{where}: the index does not open: {type(err).__name__}: {err}")
            continue
        if state == before:
            counts["before"] += 1
        elif state == after:
            counts["after"] += 1
        else:
            problems.append(
                f"neither before ({difference(state, before)}) nor after "
                f"({difference(state, after)})"
            )
        try:
            problems += next_writer(sweep, job, index, state)
        except Exception as err:  # noqa: BLE001
            problems.append(f"the next writer failed: {type(err).__name__}: {err}")
        failures += [f"{where}: {p}" for p in problems]

    failed = len({f.split(": ", 1)[0] for f in failures})
    sweep.stats[job.name] = {
        "command": f"{LABEL.get(job.op, job.op)} ({job.backend})",
        "events": len(result["events"]),
        "kill_points": len(points),
        "before": counts["before"],
        "after": counts["after"],
        "failed": failed,
        "failures": failures,
        "check_seconds": round(time.monotonic() - started, 1),
    }
    assert not failures, (
        f"{failed} of {len(points)} kill points of {LABEL.get(job.op, job.op)} "
        f"({job.backend}) left a bad index:\n" + "\n".join(failures[:25])
    )
    if job.points >= 20:
        assert len(points) >= 20
    assert counts["before"] > 0 and counts["after"] > 0


def test_a_failed_rebuild_leaves_the_index_it_was_replacing(tmp_path, monkeypatch):
    """``index --force`` over a living index, failing (or killed) just before its switch, must
    leave the old version whole: it may not touch files the current manifest names."""
    base = write_jsonl(tmp_path / "base.jsonl", tiny_records())
    index = build_index(base, tmp_path / "idx", progress=False).path
    with IndexWriter.open(index) as w:
        w.add_corpus(write_jsonl(tmp_path / "add.jsonl", ADD_RECORDS))
    before = logical_state(index)

    def no_switch(*args: object) -> None:
        raise OSError(28, "No space left on device")  # e.g. writing manifest.json fails

    monkeypatch.setattr(searchkit.ingest.build, "_commit", no_switch)
    rebuild = write_jsonl(tmp_path / "rebuild.jsonl", REBUILD_RECORDS)
    with pytest.raises(OSError, match="No space left"):
        build_index(rebuild, index, force=True, progress=False)
    assert logical_state(index) == before  # CorruptIndex today: segments/s000001 was replaced
