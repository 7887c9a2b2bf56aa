"""Fine-tune the bi-encoder on relevance data with hard negatives mined from the index.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss``: each query against its
positive, its mined hard negatives and every other row's passages in the batch (in-batch
negatives), softmax cross-entropy over cosine similarities. A new model changes every document
vector, so ``reindex`` re-embeds the index into a new folder (see ``searchkit.training.reindex``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

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
from searchkit.training.reindex import check_reindex_target
from searchkit.training.reindex import reindex as reindex_with
from searchkit.training.staging import commit_folder

EVAL_POOL = 30  # first-stage hits per evaluation query that the bi-encoder re-orders


def train_embedder(
    index: str | Path,
    queries: list[TrainQuery],
    out: str | Path,
    *,
    base: str | None = None,
    eval_queries: list[TrainQuery] | None = None,
    heldout: float = 0.1,
    negatives: int = 1,
    depth: int = 50,
    mode: str | None = None,
    epochs: float = 1.0,
    batch_size: int = 16,
    lr: float = 2e-5,
    max_length: int = 256,
    seed: int = 0,
    save_steps: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    reindex: str | Path | None = None,
) -> TrainReport:
    """Train the bi-encoder on ``queries``, save it to ``out``, and optionally re-embed the
    index into the new folder ``reindex`` (the original index is never written).

    Hard negatives are sampled as in ``train_reranker``. nDCG@10 before and after training is
    measured on the evaluation queries (``eval_queries``, else a seeded ``heldout`` share) by
    re-ordering each one's first-stage top ``EVAL_POOL`` by cosine similarity: a cheap check
    that needs no re-embedding; ``searchkit eval`` on the reindexed folder is the full one.
    Checkpoints (``save_steps``) and ``resume`` work as in ``train_reranker``.

    Example::

        queries = load_beir_queries("beir/scifact", "train")
        train_embedder("indexes/scifact", queries, "models/emb", reindex="indexes/scifact-emb")
    """
    clock, started = Clock(), time.monotonic()
    out = Path(out)
    searcher = Searcher.open(index)
    base = canonical_name(base or searcher.manifest.encoder.name)
    if reindex is not None:
        check_reindex_target(index, reindex, force)
    given = locals()
    options = {k: given[k] for k in _OPTIONS}
    staging, state = prepare_run(
        searcher, out, queries, eval_queries, {**options, "base": base}, eval_depth=EVAL_POOL,
        save_steps=save_steps, force=force, resume=resume, progress=progress,
    )  # fmt: skip
    started = clock.lap("mining", started)
    model = load_base("SentenceTransformer", base, "bi-encoder", seed)
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
    report.steps, report.resumed_from = _fit(model, state.rows, staging, schedule, progress)
    started = clock.lap("training", started)
    model.max_seq_length = serve
    model.save_pretrained(str(staging))
    report.ndcg10["after"] = ndcg10(held, pools, _scorer(model))
    started = clock.lap("eval_after", started)
    report.write(staging)
    commit_folder(staging, out)
    if reindex is not None:
        report.reindexed = str(
            reindex_with(searcher.path, out, reindex, force=force, progress=progress).path
        )
        clock.lap("reindex", started)
    report.seconds = clock.total()
    report.write(out)
    return report


_OPTIONS = (
    "heldout",
    "negatives",
    "depth",
    "mode",
    "epochs",
    "batch_size",
    "lr",
    "max_length",
    "seed",
)


def _scorer(model: Any) -> Any:
    def score(query: str, passages: list[str]) -> list[float]:
        q = model.encode_query([query], normalize_embeddings=True, convert_to_numpy=True)
        p = model.encode_document(passages, normalize_embeddings=True, convert_to_numpy=True)
        return (np.asarray(p) @ np.asarray(q)[0]).tolist()

    return score


def _fit(
    model: Any,
    rows: list[list[str]],
    folder: Path,
    schedule: Schedule,
    progress: bool,
) -> tuple[int, int | None]:
    """Train in place with SentenceTransformerTrainer (see ``fit``)."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    args = SentenceTransformerTrainingArguments(
        **training_arguments(folder, len(rows), schedule, progress)
    )
    loss = losses.MultipleNegativesRankingLoss(model)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=as_dataset(rows), loss=loss
    )
    return fit(trainer, folder)
