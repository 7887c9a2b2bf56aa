"""Fine-tune a CrossEncoder on relevance data with hard negatives mined from the index.

The loss is listwise: sentence-transformers' cross-encoder ``MultipleNegativesRankingLoss``
scores each query against its positive, its mined hard negatives and ``in_batch`` other
rows' passages, and pushes the positive to the top of that list (softmax cross-entropy). A
pointwise binary loss on the same data collapsed to constant scores here (see
benchmarks/README.md); the listwise one did not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from searchkit.defaults import DEFAULT_CANDIDATES
from searchkit.inference.resolve import canonical_name
from searchkit.query.searcher import Searcher
from searchkit.training.common import (
    Clock,
    Schedule,
    TrainReport,
    as_dataset,
    fit,
    load_base,
    measure_before,
    ndcg10,
    prepare_run,
    serving_length,
    training_arguments,
)
from searchkit.training.data import TrainQuery
from searchkit.training.staging import commit_folder


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
    save_steps: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
) -> TrainReport:
    """Train a CrossEncoder on ``queries`` and save it to ``out`` (a ``--reranker`` folder).

    Hard negatives are ``negatives`` passages sampled from each query's top ``depth`` hits of
    the index's first stage ``mode`` (hybrid by default when the index has lexical data),
    positives excluded. Before and after training, the model reranks the top ``candidates`` of
    the evaluation queries (``eval_queries``, else a seeded ``heldout`` share of ``queries``
    kept out of training), and nDCG@10 is reported. ``out`` appears only when training
    succeeds; until then the run works in the hidden sibling ``.OUT.training``, with a
    checkpoint every ``save_steps`` optimizer steps (None: every epoch) in its
    ``checkpoints/checkpoint-N`` (each one a model ``--reranker`` loads). ``resume=True``
    continues a stopped run from its last checkpoint, on the rows it mined (see
    ``searchkit.training.staging``).

    Example::

        queries = load_beir_queries("beir/scifact", "train")
        report = train_reranker("indexes/scifact", queries, "models/scifact-reranker")
        print(report.ndcg10)  # {"first_stage": ..., "before": ..., "after": ...}
    """
    clock, started = Clock(), time.monotonic()
    out = Path(out)
    searcher = Searcher.open(index)
    base = canonical_name(base or searcher.manifest.reranker)
    options = _options(locals())
    staging, state = prepare_run(
        searcher, out, queries, eval_queries, {**options, "base": base}, eval_depth=candidates,
        save_steps=save_steps, force=force, resume=resume, progress=progress,
    )  # fmt: skip
    started = clock.lap("mining", started)
    model = load_base("CrossEncoder", base, "reranker", seed)
    serve = serving_length(int(model.max_seq_length), max_length)
    model.max_seq_length = serve  # evaluated at the length it is saved with
    held, pools = state.held, state.eval_pools
    report = TrainReport(
        str(out), base, str(searcher.path), state.train_queries, len(held), len(state.rows), 0,
        {**options, "save_steps": save_steps},
    )  # fmt: skip
    measure_before(state, staging, _scorer(model))
    report.ndcg10.update(state.ndcg10)
    started = clock.lap("eval_before", started)
    model.max_seq_length = max_length
    schedule = Schedule(epochs, batch_size, lr, seed, save_steps)
    report.steps, report.resumed_from = _fit(
        model, state.rows, staging, schedule, in_batch, progress
    )
    started = clock.lap("training", started)
    model.max_seq_length = serve
    model.save_pretrained(str(staging))
    report.ndcg10["after"] = ndcg10(held, pools, _scorer(model))
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
    schedule: Schedule,
    in_batch: int,
    progress: bool,
) -> tuple[int, int | None]:
    """Train in place with CrossEncoderTrainer (see ``fit``)."""
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    args = CrossEncoderTrainingArguments(
        **training_arguments(folder, len(rows), schedule, progress)
    )
    loss = losses.MultipleNegativesRankingLoss(model, num_negatives=in_batch)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=as_dataset(rows), loss=loss)
    return fit(trainer, folder)
