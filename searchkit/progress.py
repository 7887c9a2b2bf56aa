"""Progress display for long work, on stderr so stdout stays clean for pipes and --json; and
other libraries' output kept off the terminal unless asked for (``--verbose``)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _progress(*middle: ProgressColumn, enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        *middle,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


class TaskProgress:
    """A bar over a known number of steps (e.g. queries), with done/total and time left."""

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        self._progress = _progress(MofNCompleteColumn(), enabled=enabled)
        self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> TaskProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, steps: int) -> None:
        self._progress.advance(self._task, steps)


class BuildProgress:
    """A bar over the corpus bytes read, with documents embedded and docs/s.

    Disabled, it only keeps the counts (for the summary) and draws nothing.
    """

    def __init__(self, total_bytes: int, enabled: bool = True) -> None:
        self.docs = 0
        self._started = time.monotonic()
        self._progress = _progress(
            TaskProgressColumn(),
            TextColumn("{task.fields[docs]:,} docs"),
            TextColumn("{task.fields[rate]:.1f} docs/s"),
            enabled=enabled,
        )
        self._task: TaskID = self._progress.add_task(
            "embedding", total=total_bytes, docs=0, rate=0.0
        )

    def __enter__(self) -> BuildProgress:
        self._progress.start()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @property
    def rate(self) -> float:
        """Documents per second since the bar started."""
        return self.docs / max(time.monotonic() - self._started, 1e-9)

    def advance(self, docs: int) -> None:
        self.docs += docs
        self._progress.update(self._task, docs=self.docs, rate=self.rate)

    def read_to(self, position: int) -> None:
        self._progress.update(self._task, completed=position)

    def phase(self, description: str) -> None:
        """Switch the label, e.g. to the vector-index build after embedding."""
        self._progress.update(self._task, description=description)


LOGGER = "searchkit"
# loggers of libraries that load, export and calibrate models (NNCF's INFO lines); transformers
# sets its own level on import (searchkit.inference.resolve.load_st_model quiets it)
THIRD_PARTY = ("sentence_transformers", "nncf", "torch", "huggingface_hub")


def log_verbose() -> None:
    """Log searchkit's INFO lines to stderr (which path each model runs on, and why) and let
    other libraries' output through (the CLI's ``--verbose``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def verbose() -> bool:
    """Whether searchkit logs at INFO or finer (the CLI's ``--verbose``)."""
    return logging.getLogger(LOGGER).isEnabledFor(logging.INFO)


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Other libraries' progress bars, warnings and log lines below ERROR (NNCF's calibration
    bars, transformers' ``loss_type=None``) never reach the terminal, unless ``verbose()``:
    then they go to stderr. stdout is never theirs: it carries ``--json`` output."""
    if verbose():
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    loggers = [logging.getLogger(name) for name in THIRD_PARTY]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        # stderr is left alone: searchkit's own warnings (e.g. the hub not reachable) use it
        with (
            open(os.devnull, "w") as null,
            contextlib.redirect_stdout(null),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
