"""What both trainers share: mining and saving the run's data, training rows, the trainer's
arguments and resuming it, held-out scoring, the report."""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from searchkit.errors import InvalidParameter
from searchkit.eval.metrics import score_run
from searchkit.inference.resolve import load_st_model
from searchkit.training.data import TrainQuery, qrels_of, split_heldout
from searchkit.training.mining import (
    Candidate,
    attach_positive_texts,
    candidate_pools,
    hard_negatives,
)
from searchkit.training.staging import (
    CHECKPOINTS,
    RunState,
    checkpoint_step,
    last_checkpoint,
    queries_digest,
    staging_folder,
)

REPORT = "training.json"
# The longest input a trained model reads after training, unless it was trained on longer ones:
# short training inputs (--max-length) save time, and need not cut what the model reads later.
SERVE_TOKENS = 256


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
    resumed_from: int | None = None  # the checkpoint step a resumed run continued from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> None:
        (folder / REPORT).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def serving_length(base_length: int, max_length: int) -> int:
    """Tokens the saved model reads: ``max_length``, or the base's own length up to
    ``SERVE_TOKENS`` when that is longer."""
    return max(max_length, min(base_length, SERVE_TOKENS))


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


@dataclass(frozen=True)
class Schedule:
    """How the trainer runs: passes over the rows, rows per step, learning rate, seed, and a
    checkpoint every ``save_steps`` optimizer steps (None: every epoch)."""

    epochs: float
    batch_size: int
    lr: float
    seed: int
    save_steps: int | None


def training_arguments(
    folder: Path, rows: int, schedule: Schedule, progress: bool
) -> dict[str, Any]:
    """The sentence-transformers TrainingArguments both trainers use: CPU, no duplicate texts
    in a batch (in-batch negatives), about 20 logs, and checkpoints under ``folder`` with what
    resuming needs (optimizer, scheduler, RNG state), the last one kept (the trainer removes
    the previous one only once the new one is written)."""
    from sentence_transformers.base.sampler import BatchSamplers

    every = {"save_strategy": "epoch"} if schedule.save_steps is None else {
        "save_strategy": "steps", "save_steps": schedule.save_steps
    }  # fmt: skip
    return {
        "output_dir": str(folder / CHECKPOINTS),
        "num_train_epochs": schedule.epochs,
        "per_device_train_batch_size": schedule.batch_size,
        "learning_rate": schedule.lr,
        "warmup_steps": 0.1,
        "seed": schedule.seed,
        "batch_sampler": BatchSamplers.NO_DUPLICATES,
        **every,
        "save_total_limit": 1,
        "logging_steps": max(1, rows // schedule.batch_size // 20),
        "disable_tqdm": not progress,
        "report_to": "none",
        "use_cpu": True,
    }


def load_base(cls: str, name: str, role: str, seed: int) -> Any:
    """The model to start from, with torch seeded first: a fresh scoring head (a bi-encoder
    as a reranker's base) starts the same in every run with the same ``seed``."""
    from transformers import set_seed

    set_seed(seed)
    return load_st_model(cls, name, role)


def fit(trainer: Any, staging: Path) -> tuple[int, int | None]:
    """Run ``trainer``, from the last complete checkpoint in ``staging`` when there is one;
    returns the optimizer steps taken in all and the step it resumed from (None: from 0)."""
    last = last_checkpoint(staging)
    # the trainer prints its loss logs: keep stdout for the result (--json)
    with contextlib.redirect_stdout(sys.stderr):
        result = trainer.train(resume_from_checkpoint=None if last is None else str(last))
    return int(result.global_step), None if last is None else checkpoint_step(last)


def prepare_run(
    searcher: Any,
    out: Path,
    queries: list[TrainQuery],
    eval_queries: list[TrainQuery] | None,
    options: dict[str, Any],
    *,
    eval_depth: int,
    save_steps: int | None,
    force: bool,
    resume: bool,
    progress: bool,
) -> tuple[Path, RunState]:
    """The staging folder and the data to train on: a resumed run's saved state (checked
    against ``options``, which must hold heldout, depth, negatives, mode and seed), else
    freshly mined (see ``mine``) and saved in the folder before training starts."""
    if save_steps is not None and save_steps < 1:
        raise InvalidParameter(
            f"save_steps must be at least 1, got {save_steps}", param="save_steps"
        )
    staging = staging_folder(out, force=force, resume=resume)
    options = {
        **options,
        "index": str(searcher.path),
        "queries": queries_digest(queries, eval_queries),
    }
    state = RunState.load(staging) if resume else None
    if state is not None:
        state.check_options(options, staging)
        return staging, state
    o = options
    train, held, eval_pools, rows = mine(
        searcher, queries, eval_queries, o["heldout"], o["depth"], eval_depth, o["negatives"],
        o["mode"], o["seed"], progress,
    )  # fmt: skip
    if not rows:
        raise InvalidParameter(
            "no training rows: no query has a hard negative in the index's first stage; "
            "raise depth= or add documents"
        )
    state = RunState(options, len(train), held, eval_pools, rows)
    state.save(staging)
    return staging, state


def measure_before(
    state: RunState, staging: Path, score: Callable[[str, list[str]], Sequence[float]]
) -> None:
    """nDCG@10 of the first stage and of the starting model on the evaluation pools, saved
    with the run's state (a resumed run does not measure them again)."""
    if "before" not in state.ndcg10:
        state.ndcg10["first_stage"] = ndcg10(state.held, state.eval_pools)
        state.ndcg10["before"] = ndcg10(state.held, state.eval_pools, score)
        state.save(staging)


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
