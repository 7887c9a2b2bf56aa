"""Faults injected into Ray worker processes by test_ray.py, as a ``worker_process_setup_hook``.

Ray runs the hook in every worker process of the job when it starts (a restarted actor too),
so the code under test runs unchanged: only ``searchkit.distributed.tasks.write_part`` is wrapped.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

# imported here, not in the hook, so a stale name fails the test module at collection instead of
# every Ray worker's start (which Ray reports only as a stalled dataset)
from searchkit.distributed import blocks
from searchkit.distributed import tasks as ingest_tasks

KILL_BLOCK = "SEARCHKIT_TEST_KILL_BLOCK"  # the block whose first writer dies
KILL_MARKER = "SEARCHKIT_TEST_KILL_MARKER"  # created by the dying worker, holding its pid


def kill_once() -> None:
    """The first worker to write block ``$SEARCHKIT_TEST_KILL_BLOCK``'s part leaves half a
    temporary file and SIGKILLs itself; the marker file makes it happen once per job."""
    if KILL_BLOCK not in os.environ:
        return
    name = blocks.part_name(int(os.environ[KILL_BLOCK]))
    marker = Path(os.environ[KILL_MARKER])
    real = ingest_tasks.write_part

    def write_part(path: Path, *args: object, **kwargs: object) -> None:
        if path.name == name and _claim(marker):
            # half a part, as a writer killed mid-write leaves it
            path.with_name(f".{path.name}.tmp-{os.getpid()}").write_bytes(b"PAR1")
            os.kill(os.getpid(), signal.SIGKILL)
        real(path, *args, **kwargs)

    ingest_tasks.write_part = write_part


def _claim(marker: Path) -> bool:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True
