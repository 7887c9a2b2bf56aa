"""Draw the benchmark plots of the docs from ``benchmarks/results/*.json``.

    .venv/bin/python docs/plots.py          # -> docs/img/*.png (small PNGs, committed)

Each plot reads only the JSON a benchmark script wrote (see ``benchmarks/README.md`` for the
commands); nothing is measured here.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
OUT = Path(__file__).resolve().parent / "img"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def ndcg(name: str, stage: str = "retrieval") -> float:
    return load(name)["metrics"][stage]["nDCG@10"]


def save(fig: plt.Figure, name: str) -> None:
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=90)
    plt.close(fig)


def first_stages() -> None:
    """SciFact test nDCG@10 of each first stage, and with the shared test reranker."""
    fusion = load("rerank_fusion_shared")["results"]["ndcg10"]
    bars = [
        ("dense", ndcg("eval_scifact_dense"), "C0"),
        ("lexical (BM25)", ndcg("eval_scifact_lexical"), "C0"),
        ("hybrid, RRF", ndcg("eval_scifact_hybrid_rrf"), "C0"),
        ("hybrid, weighted\n(the default)", ndcg("eval_scifact_hybrid_weighted"), "C0"),
        ("hybrid + rerank\n(top 20)", ndcg("eval_scifact_hybrid_weighted_rerank", "rerank"), "C1"),
        ("hybrid + rerank\nfused, w=0.3", fusion["0.3"], "C1"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names, values, colors = zip(*bars, strict=True)
    ax.barh(names, values, color=colors)
    for y, value in enumerate(values):
        ax.text(value + 0.003, y, f"{value:.3f}", va="center", fontsize=9)
    ax.set_xlim(0.6, 0.76)
    ax.invert_yaxis()
    ax.set_xlabel("nDCG@10, SciFact test (300 queries)")
    save(fig, "first_stages.png")


def compact_vectors() -> None:
    """nDCG@10 against the rescore depth for each vector format (SciFact)."""
    results = load("compact")["results"]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for label in ("sq8", "binary", "binary hnsw"):
        points = results[label]["points"]
        name = f"{label} ({results[label]['bytes_per_vector']:.0f} B/vector)"
        xs = [p["rescore"] for p in points]
        ax.plot(xs, [p["ndcg_at_10"] for p in points], marker="o", label=name)
    exact = results["float32 flat"]["points"][0]["ndcg_at_10"]
    ax.axhline(exact, color="grey", linestyle="--", label="float32 exact (1,536 B/vector)")
    ax.set_xlabel("--rescore (candidates rescored with the float vectors)")
    ax.set_ylabel("nDCG@10")
    ax.legend(fontsize=8)
    save(fig, "compact_vectors.png")


def rerank_cost() -> None:
    """Mean rerank time per query against nDCG@10 for each cost option (SciFact)."""
    rows = load("rerank_cost")["results"]["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    groups = {"--candidates": "depth", "--rerank-max-tokens": "cap", "--rerank-margin": "exit"}
    for (label, prefix), marker in zip(groups.items(), "osD", strict=True):
        picked = [(name, row) for name, row in rows.items() if name.startswith(prefix)]
        xs = [row["rerank_ms"]["mean"] for _, row in picked]
        ys = [row["ndcg10_rerank"] for _, row in picked]
        ax.scatter(xs, ys, marker=marker, label=label, s=40)
        below = prefix == "exit"
        for (name, _), x, y in zip(picked, xs, ys, strict=True):
            short = name.split(" (")[0].split(" ", 1)[1].replace("~", "")
            offset = (5, -11) if below else (5, 3)
            ax.annotate(short, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
    first = next(iter(rows.values()))["ndcg10_retrieval"]
    ax.axhline(first, color="grey", linestyle="--", label="first stage alone")
    ax.set_xlabel("mean rerank time per query, ms (2 busy cores)")
    ax.set_ylabel("nDCG@10")
    ax.legend(fontsize=8)
    save(fig, "rerank_cost.png")


def serve_load() -> None:
    """Queries per second of the HTTP server by concurrent clients, micro-batching on and off."""
    loads = [row for row in load("serve_load")["results"]["loads"] if not row["rerank"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for window, label in ((5.0, "micro-batching, 5 ms window"), (0.0, "no batching")):
        picked = sorted((r["users"], r["qps"]) for r in loads if r["window_ms"] == window)
        ax.plot(*zip(*picked, strict=True), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("queries/s (no rerank)")
    ax.legend(fontsize=8)
    save(fig, "serve_load.png")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for plot in (first_stages, compact_vectors, rerank_cost, serve_load):
        plot()
        print(f"wrote {OUT / plot.__name__}.png")


if __name__ == "__main__":
    main()
