"""The indexes a server serves: one (``searchkit serve INDEX``) or every index in a folder.

In a folder, each subfolder holding a ``manifest.json`` is an index named after the folder
(hidden folders, such as a build's staging folder, are skipped). The folder is scanned at start,
every ``refresh_seconds``, and whenever a request names an index not seen yet, so an index
built into the folder shows up without a restart; one rebuilt in place (a new ``created`` in its
manifest) is reopened, and one removed is dropped.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from searchkit.errors import IndexNotFound, SearchkitError
from searchkit.index.manifest import Manifest
from searchkit.serve.service import ServerConfig, Service
from searchkit.serve.shared import Shared

log = logging.getLogger("searchkit.serve.app")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class Indexes:
    """The services of a server, by name.

    Args:
        path: an index folder, or (``folder=True``) a folder of index folders.
        config: the server's settings (shared by every index).
        shared: the lanes, models and metrics of the process.
        folder: serve every index in ``path``.
        **open_args: ``Service``'s options (reranker, verify, runtimes).
    """

    def __init__(
        self, path: Path, config: ServerConfig, shared: Shared, *, folder: bool, **open_args: Any
    ) -> None:
        self.path = path
        self.config = config
        self.shared = shared
        self.folder = folder
        self._open_args = open_args
        self._services: dict[str, Service] = {}
        self._seen: dict[str, tuple[int, str]] = {}  # name -> (inode, manifest's created)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        if not folder:  # open here, so a missing or broken index fails before serving
            self._services[path.name] = Service(path, config, shared, **open_args)
        elif not path.is_dir():
            raise IndexNotFound(f"{path}: no such folder of indexes")

    def start(self) -> None:
        """Start every index (a folder: scan it, then keep scanning)."""
        if not self.folder:
            self.only().start()
            return
        self.scan()
        if self.config.refresh_seconds > 0:
            threading.Thread(target=self._poll, name="searchkit-scan", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for service in self._services.values():
                service.stop()
            self._services.clear()

    def only(self) -> Service:
        """The one index of a single-index server."""
        return next(iter(self._services.values()))

    def all(self) -> list[Service]:
        with self._lock:
            return list(self._services.values())

    def get(self, name: str) -> Service:
        """The index called ``name``; ``IndexNotFound`` naming those there are."""
        with self._lock:
            if name not in self._services and self.folder:
                self.scan()
            if name in self._services:
                return self._services[name]
            known = ", ".join(sorted(self._services)) or "none yet"
        raise IndexNotFound(f"no index {name!r} in {self.path} (there are: {known})")

    def scan(self) -> None:
        """Open the indexes new in the folder, reopen rebuilt ones, drop removed ones."""
        with self._lock:
            found = {p.name: p for p in sorted(self.path.iterdir()) if _is_index(p)}
            for name in set(self._services) - set(found):
                log.info("searchkit serve: index %r is gone", name)
                self._services.pop(name).stop()
                self._seen.pop(name, None)
            for name, path in found.items():
                self._open(name, path)

    def _open(self, name: str, path: Path) -> None:
        try:
            seen = (path.stat().st_ino, Manifest.read(path).created)
        except (SearchkitError, OSError) as err:  # mid-build, or not an index after all
            log.warning("searchkit serve: skipping %s: %s", path, err)
            return
        if self._seen.get(name) == seen:
            return
        self._seen[name] = seen  # a broken one is tried again once it changes
        try:
            service = Service(path, self.config, self.shared, name=name, **self._open_args)
        except SearchkitError as err:
            log.warning("searchkit serve: cannot serve %s: %s", path, err)
            return
        service.start()
        old = self._services.get(name)
        self._services[name] = service
        if old is not None:
            log.info("searchkit serve: index %r was rebuilt; reopened", name)
            old.stop()

    def _poll(self) -> None:
        while not self._stopping.wait(self.config.refresh_seconds):
            try:
                self.scan()
            except OSError as err:
                log.warning("searchkit serve: scanning %s failed (will retry): %s", self.path, err)


def _is_index(path: Path) -> bool:
    return bool(_NAME.match(path.name)) and (path / "manifest.json").is_file()
