"""Fine-tune a CrossEncoder on relevance data with hard negatives mined from the index.

The loss is listwise: sentence-transformers' cross-encoder ``MultipleNegativesRankingLoss``
scores each query against its positive, its mined hard negatives and ``in_batch`` other
rows' passages, and pushes the positive to the top of that list (softmax cross-entropy). A
pointwise binary loss on the same data collapsed to constant scores here (see
benchmarks/README.md); the listwise one did not.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from searchkit.defaults import DEFAULT_CANDIDATES
from searchkit.inference.resolve import canonical_name, load_st_model
from searchkit.query.searcher import Searcher
from searchkit.training.common import (
    Clock,
    TrainReport,
    as_dataset,
    commit_folder,
    mine,
    ndcg10,
    serving_length,
    staging_folder,
    training_arguments,
)
from searchkit.training.data import TrainQuery


def train_reranker(
    index: str | Path,
    queries: list[TrainQuery],
    out: str | Path,
    *,
    base: str | None = None,
    eval_queries: list[TrainQuery] | None = None,
    heldout: float = 0.1,
    negatives: int = 3,
    depth: int = 50,
    in_batch: int = 3,
    mode: str | None = None,
    epochs: float = 1.0,
    batch_size: int = 4,
    lr: float = 5e-5,
    max_length: int = 256,
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> TrainReport:
    """Train a CrossEncoder on ``queries`` and save it to ``out`` (a ``--reranker`` folder).

    Hard negatives are ``negatives`` passages sampled from each query's top ``depth`` hits of
    the index's first stage ``mode`` (hybrid by default when the index has lexical data),
    positives excluded. Before and after training, the model reranks the top ``candidates`` of
    the evaluation queries (``eval_queries``, else a seeded ``heldout`` share of ``queries``
    kept out of training), and nDCG@10 is reported. Checkpoints go to ``out/checkpoints``;
    ``out`` appears only when training succeeds.

    Example::

        queries = load_beir_queries("beir/scifact", "train")
        report = train_reranker("indexes/scifact", queries, "models/scifact-reranker")
        print(report.ndcg10)  # {"first_stage": ..., "before": ..., "after": ...}
    """
    clock, started = Clock(), time.monotonic()
    out = Path(out)
    searcher = Searcher.open(index)
    base = canonical_name(base or searcher.manifest.reranker)
    staging = staging_folder(out, force)
    train, held, eval_pools, rows = mine(
        searcher, queries, eval_queries, heldout, depth, candidates, negatives, mode, seed, progress
    )
    started = clock.lap("mining", started)
    model = load_st_model("CrossEncoder", base, "reranker")
    serve = serving_length(int(model.max_seq_length), max_length)
    model.max_seq_length = serve  # evaluated at the length it is saved with
    report = TrainReport(
        str(out), base, str(searcher.path), len(train), len(held), len(rows), 0, _options(locals())
    )
    report.ndcg10["first_stage"] = ndcg10(held, eval_pools)
    report.ndcg10["before"] = ndcg10(held, eval_pools, _scorer(model))
    started = clock.lap("eval_before", started)
    model.max_seq_length = max_length
    report.steps = _fit(model, rows, staging, epochs, batch_size, lr, in_batch, seed, progress)
    started = clock.lap("training", started)
    model.max_seq_length = serve
    model.save_pretrained(str(staging))
    report.ndcg10["after"] = ndcg10(held, eval_pools, _scorer(model))
    clock.lap("eval_after", started)
    report.seconds = clock.total()
    report.write(staging)
    commit_folder(staging, out)
    return report


def _options(args: dict[str, Any]) -> dict[str, Any]:
    keys = ("heldout", "negatives", "depth", "in_batch", "mode", "epochs", "batch_size", "lr")
    return {k: args[k] for k in (*keys, "max_length", "candidates", "seed")}


def _scorer(model: Any) -> Any:
    def score(query: str, passages: list[str]) -> list[float]:
        pairs = [(query, p) for p in passages]
        return model.predict(pairs, batch_size=32, show_progress_bar=False).tolist()

    return score


def _fit(
    model: Any,
    rows: list[list[str]],
    folder: Path,
    epochs: float,
    batch_size: int,
    lr: float,
    in_batch: int,
    seed: int,
    progress: bool,
) -> int:
    """Train in place with CrossEncoderTrainer; returns the optimizer steps taken."""
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    args = CrossEncoderTrainingArguments(
        **training_arguments(folder, len(rows), epochs, batch_size, lr, seed, progress)
    )
    loss = losses.MultipleNegativesRankingLoss(model, num_negatives=in_batch)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=as_dataset(rows), loss=loss)
    # the trainer prints its loss logs: keep stdout for the result (--json)
    with contextlib.redirect_stdout(sys.stderr):
        return int(trainer.train().global_step)
