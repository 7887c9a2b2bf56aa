"""One writer at a time: an exclusive ``flock`` on a lock file beside the index folder.

The kernel drops a ``flock`` when its holder exits, even on SIGKILL, so a lock left by a dead
writer is never in the way: a stale lock file is simply locked again. The file records who holds
it, for the error message. The lock lives beside the index (``.<name>.lock``) so that creating
a new index and replacing one are guarded too. (``flock`` is not reliable on NFS.)
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from searchkit.errors import IndexLocked


def lock_path(index: Path) -> Path:
    """The lock file guarding the index folder ``index``."""
    return index.parent / f".{index.name}.lock"


class WriterLock:
    """Hold the writer lock of an index folder; raises ``IndexLocked`` if another has it."""

    def __init__(self, index: str | Path) -> None:
        self.path = lock_path(Path(index))
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise IndexLocked(
                f"{self.path.parent / self.path.name[1:-5]} is being changed by {holder}; "
                "only one writer at a time: wait for it to finish and try again"
            ) from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:2])}, since {since})".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
