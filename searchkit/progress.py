"""Progress display for long work, on stderr so stdout stays clean for pipes and --json."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BuildProgress:
    """A bar over the corpus bytes read, with documents embedded and docs/s.

    Disabled, it only keeps the counts (for the summary) and draws nothing.
    """

    def __init__(self, total_bytes: int, enabled: bool = True) -> None:
        self.docs = 0
        self._started = time.monotonic()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[docs]:,} docs"),
            TextColumn("{task.fields[rate]:.1f} docs/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task: TaskID = self._progress.add_task(
            "embedding", total=total_bytes, docs=0, rate=0.0
        )

    def __enter__(self) -> BuildProgress:
        self._progress.start()
        self._started = time.monotonic()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
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
