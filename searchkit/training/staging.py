"""The hidden folder a training run works in, and what lets a stopped run resume from it.

A run trains in ``.OUT.training`` next to ``out`` and renames it to ``out`` only when it
succeeds. Inside, ``run.json`` keeps what the run started from (its options, a digest of its
queries, the mined training rows, the evaluation pools and the nDCG@10 measured before
training) and ``checkpoints/checkpoint-N`` the trainer's state every ``save_steps`` steps
(weights, optimizer, scheduler, RNG and step count). ``resume=True`` continues a stopped run
from its last complete checkpoint on the same rows, in the same order; the options must be the
ones it was started with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from searchkit.errors import IndexExists, InvalidParameter
from searchkit.training.data import TrainQuery
from searchkit.training.mining import Candidate

CHECKPOINTS = "checkpoints"
RUN = "run.json"
_PREFIX = "checkpoint-"
_TRAINER_STATE = "trainer_state.json"  # the trainer writes it last: a checkpoint is complete


@dataclass
class RunState:
    """What a run trains and evaluates on, kept so that a resumed run uses the same data."""

    options: dict[str, Any]
    train_queries: int
    held: list[TrainQuery]
    eval_pools: list[list[Candidate]]
    rows: list[list[str]]
    ndcg10: dict[str, float] = field(default_factory=dict)  # first_stage, before

    def save(self, folder: Path) -> None:
        """Write ``run.json`` in ``folder`` atomically (a crash leaves the old one or none)."""
        data = {**asdict(self), "eval_pools": [[asdict(c) for c in p] for p in self.eval_pools]}
        tmp = folder / f"{RUN}.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False))
        os.replace(tmp, folder / RUN)

    @classmethod
    def load(cls, folder: Path) -> RunState | None:
        """The state saved in ``folder``, or None when there is none."""
        path = folder / RUN
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(
            options=data["options"],
            train_queries=data["train_queries"],
            held=[TrainQuery(**q) for q in data["held"]],
            eval_pools=[[Candidate(**c) for c in p] for p in data["eval_pools"]],
            rows=data["rows"],
            ndcg10=data["ndcg10"],
        )

    def check_options(self, options: dict[str, Any], folder: Path) -> None:
        """Raise InvalidParameter naming the first option that differs from the saved run's."""
        for key, value in options.items():
            was = self.options.get(key)
            if was != value:
                raise InvalidParameter(
                    f"cannot resume the stopped run in {folder}: it was started with "
                    f"{key}={was!r}, not {value!r}; pass the options it was started with, or "
                    f"force=True to start over",
                    param=None if key == "queries" else key,
                )


def queries_digest(*groups: Sequence[TrainQuery] | None) -> str:
    """A short digest of the training data, to tell whether a resumed run got the same."""
    payload = [[asdict(q) for q in g] if g is not None else None for g in groups]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def staging_folder(out: Path, *, force: bool, resume: bool) -> Path:
    """The folder to train into; it becomes ``out`` only when training succeeds.

    With ``resume``, a stopped run's folder is kept (or a new one made when there is none);
    otherwise a stopped run's folder is discarded, and refused unless ``force`` when it holds
    checkpoints.

    Raises:
        IndexExists: ``out`` exists and ``force`` is not set, or a stopped run's checkpoints
            would be discarded without ``force``.
    """
    if out.exists() and not force:
        raise IndexExists(f"{out} exists; pass force=True to replace it, or choose another out=")
    staging = out.with_name(f".{out.name}.training")
    if resume and staging.is_dir():
        return staging
    last = last_checkpoint(staging)
    if last is not None and not force:
        raise IndexExists(
            f"{staging} holds a stopped run (last checkpoint at step {checkpoint_step(last)}); "
            f"pass resume=True to continue it, or force=True to discard it"
        )
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def last_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the most steps under ``folder/checkpoints``, or None.

    A checkpoint is complete when the trainer wrote its state (its last file); one cut short
    by a crash is skipped.
    """
    done = [
        p
        for p in (folder / CHECKPOINTS).glob(f"{_PREFIX}*")
        if p.name[len(_PREFIX) :].isdigit() and _complete(p)
    ]
    return max(done, key=checkpoint_step, default=None)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a ``checkpoint-N`` folder was saved at."""
    return int(checkpoint.name[len(_PREFIX) :])


def commit_folder(staging: Path, out: Path) -> None:
    """Move the trained model into place (replacing ``out``), without the checkpoints (the
    model is the last one's weights; the optimizer state only served resuming)."""
    shutil.rmtree(staging / CHECKPOINTS, ignore_errors=True)
    (staging / RUN).unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def _complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / _TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return True
