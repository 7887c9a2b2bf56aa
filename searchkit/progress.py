"""Progress display for long work, on stderr so stdout stays clean for pipes and --json."""

from __future__ import annotations

import time

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
