"""What both trainers share: the output folder, training rows, held-out scoring, the report."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from searchkit.errors import IndexExists, InvalidParameter
from searchkit.eval.metrics import score_run
from searchkit.training.data import TrainQuery, qrels_of, split_heldout
from searchkit.training.mining import (
    Candidate,
    attach_positive_texts,
    candidate_pools,
    hard_negatives,
)

REPORT = "training.json"
# The longest input a trained model reads after training, unless it was trained on longer ones:
# short training inputs (--max-length) save time, and need not cut what the model reads later.
SERVE_TOKENS = 256
CHECKPOINTS = "checkpoints"


@dataclass
class TrainReport:
    """What a training run did: where the model is, the data sizes, nDCG@10 before and after
    on the evaluation queries (``heldout``: a share of the training queries, or a given split),
    and how long it took."""

    model: str
    base: str
    index: str
    train_queries: int
    eval_queries: int
    rows: int
    steps: int
    options: dict[str, Any]
    ndcg10: dict[str, float] = field(default_factory=dict)  # first_stage, before, after
    seconds: dict[str, float] = field(default_factory=dict)  # mining, training, eval, total
    reindexed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> None:
        (folder / REPORT).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def serving_length(base_length: int, max_length: int) -> int:
    """Tokens the saved model reads: ``max_length``, or the base's own length up to
    ``SERVE_TOKENS`` when that is longer."""
    return max(max_length, min(base_length, SERVE_TOKENS))


def staging_folder(out: Path, force: bool) -> Path:
    """The folder to train into; it becomes ``out`` only when training succeeds.

    Raises:
        IndexExists: ``out`` exists and ``force`` is not set.
    """
    if out.exists() and not force:
        raise IndexExists(f"{out} exists; pass force=True to replace it, or choose another out=")
    staging = out.with_name(f".{out.name}.training")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def commit_folder(staging: Path, out: Path) -> None:
    """Move the trained model into place (replacing ``out``)."""
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def training_rows(
    queries: Sequence[TrainQuery], pools: Sequence[Sequence[Candidate]], negatives: int, seed: int
) -> list[list[str]]:
    """One row per (query, positive): query, positive, then ``negatives`` hard negatives (the
    sample repeated when a pool runs short; rows with none are left out)."""
    if negatives < 1:
        raise InvalidParameter(f"negatives must be at least 1, got {negatives}")
    rng = random.Random(seed)
    rows = []
    for q, pool in zip(queries, pools, strict=True):
        for positive in q.positive_texts:
            negs = hard_negatives(q, pool, negatives, rng)
            if negs:
                rows.append([q.text, positive, *(negs[i % len(negs)] for i in range(negatives))])
    return rows


def as_dataset(rows: list[list[str]]) -> Any:
    """A ``datasets.Dataset`` with columns query, positive, negative_1..n."""
    from datasets import Dataset

    names = ["query", "positive", *(f"negative_{i}" for i in range(1, len(rows[0]) - 1))]
    return Dataset.from_dict({n: [r[i] for r in rows] for i, n in enumerate(names)})


def ndcg10(
    queries: Sequence[TrainQuery],
    pools: Sequence[Sequence[Candidate]],
    score: Callable[[str, list[str]], Sequence[float]] | None = None,
) -> float:
    """nDCG@10 of each query's pool ranked by ``score(query, passages)`` (None: pool order)."""
    run = {}
    for q, pool in zip(queries, pools, strict=True):
        order = list(range(len(pool)))
        if score is not None:
            values = list(score(q.text, [c.passage for c in pool]))
            order.sort(key=lambda i: -values[i])
        run[q.id] = {pool[i].id: float(len(pool) - r) for r, i in enumerate(order)}
    qrels = qrels_of(queries)
    return score_run(qrels, {q: run[q] for q in qrels})["nDCG@10"] if qrels else float("nan")


class Clock:
    """Named wall-clock spans, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.monotonic()

    def lap(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.seconds[name] = round(now - since, 1)
        return now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.monotonic() - self._start, 1)}


def training_arguments(
    folder: Path, rows: int, epochs: float, batch_size: int, lr: float, seed: int, progress: bool
) -> dict[str, Any]:
    """The sentence-transformers TrainingArguments both trainers use: CPU, no duplicate texts
    in a batch (in-batch negatives), one checkpoint per epoch under ``folder``, about 20 logs."""
    from sentence_transformers.base.sampler import BatchSamplers

    return {
        "output_dir": str(folder / CHECKPOINTS),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch_size,
        "learning_rate": lr,
        "warmup_steps": 0.1,
        "seed": seed,
        "batch_sampler": BatchSamplers.NO_DUPLICATES,
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "save_only_model": True,
        "logging_steps": max(1, rows // batch_size // 20),
        "disable_tqdm": not progress,
        "report_to": "none",
        "use_cpu": True,
    }


def mine(
    searcher: Any,
    queries: list[TrainQuery],
    eval_queries: list[TrainQuery] | None,
    heldout: float,
    depth: int,
    eval_depth: int,
    negatives: int,
    mode: str | None,
    seed: int,
    progress: bool,
) -> tuple[list[TrainQuery], list[TrainQuery], list[list[Candidate]], list[list[str]]]:
    """What both trainers start from, in one first-stage pass over the index: the training
    queries and the evaluation ones (``eval_queries``, else a seeded ``heldout`` share), each
    evaluation query's top ``eval_depth`` candidates, and the training rows with ``negatives``
    hard negatives from each training query's top ``depth``."""
    attach_positive_texts(searcher, queries + (eval_queries or []))
    train, held = (
        (queries, eval_queries)
        if eval_queries is not None
        else split_heldout(queries, heldout, seed)
    )
    pools = candidate_pools(searcher, train + held, max(depth, eval_depth), mode, progress)
    eval_pools = [p[:eval_depth] for p in pools[len(train) :]]
    rows = training_rows(train, [p[:depth] for p in pools[: len(train)]], negatives, seed)
    return train, held, eval_pools, rows
