"""Commit steps shared by every writer: stage a segment, switch the manifest, collect garbage.

The order makes every change atomic. New files are written under temporary names and fsynced,
then renamed into place; nothing refers to them until ``manifest.json`` is atomically replaced
(the switch). Files the new manifest no longer names are removed only after the switch, by a
writer holding the lock. A crash at any point leaves the old or the new version, and the next
writer removes the leftovers.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from searchkit.errors import IndexExists
from searchkit.index.fsio import fsync_dir, fsync_file, fsync_tree
from searchkit.index.manifest import MANIFEST, FileEntry, Manifest
from searchkit.index.segment import write_deletions

SEGMENTS = "segments"
DELETIONS = "deletions"


def segment_name(number: int) -> str:
    return f"s{number:06d}"


def staging_segment(root: Path, name: str) -> Path:
    """A fresh temporary folder for segment ``name`` under ``root/segments``."""
    folder = root / SEGMENTS / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def install_segment(root: Path, staged: Path, name: str) -> None:
    """Flush a staged segment and rename it to ``segments/<name>`` (not yet referenced)."""
    fsync_tree(staged)
    final = root / SEGMENTS / name
    shutil.rmtree(final, ignore_errors=True)  # a leftover of a writer killed before its switch
    os.rename(staged, final)
    fsync_dir(root / SEGMENTS)


def stage_deletions(root: Path, version: int, deleted: dict[str, np.ndarray]) -> FileEntry | None:
    """Write the tombstones of ``version`` (None when nothing is deleted)."""
    if not any(len(rows) for rows in deleted.values()):
        return None
    folder = root / DELETIONS
    folder.mkdir(exist_ok=True)
    relative = f"{DELETIONS}/v{version:06d}.parquet"
    tmp = folder / f".v{version:06d}.tmp-{os.getpid()}"
    write_deletions(tmp, {name: rows for name, rows in deleted.items() if len(rows)})
    fsync_file(tmp)
    os.replace(tmp, root / relative)
    fsync_dir(folder)
    return FileEntry.of(root, relative)


def switch(root: Path, manifest: Manifest) -> None:
    """Make ``manifest`` the index's current version (one atomic replace), then tidy up."""
    manifest.write(root)
    collect_garbage(root, manifest)


def collect_garbage(root: Path, manifest: Manifest) -> None:
    """Remove what ``manifest`` does not name: old segments, deletions, temporary files.

    Only a writer holding the lock may call this. Readers that opened an older version keep
    reading: they hold their files open (memory maps), which outlive the names.
    """
    named = {Path(entry.path) for entry in manifest.files.values()}
    keep_dirs = {p.parent for p in named} | {Path(SEGMENTS), Path(DELETIONS)}
    for path in sorted(root.iterdir()):
        relative = path.relative_to(root)
        if path.name == MANIFEST or relative in keep_dirs:
            continue
        remove(path)  # format-1 data folders (v1/), stray temporary files
    for folder in (root / SEGMENTS, root / DELETIONS):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            relative = path.relative_to(root)
            if relative not in keep_dirs and relative not in named:
                remove(path)
    fsync_dir(root)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(staging: Path, out: Path, manifest: Manifest) -> None:
    """Make the new index built in ``staging`` the index at ``out`` (absent or an empty
    folder): write its manifest last, fsync, and rename the folder into place."""
    manifest.write(staging)
    fsync_tree(staging)
    try:
        os.rename(staging, out)
    except OSError:
        raise IndexExists(f"{out} was created by someone else during the build") from None
    fsync_dir(out.parent)


def check_target(out: Path, force: bool) -> int | None:
    """The version of the index at ``out`` (None if there is none, 0 if unreadable); refuse
    to replace it unless forced, and never replace a folder that is not an index. A plain
    build and a Ray ingest (``searchkit.distributed.ingest``) may replace each other's indexes."""
    if out.exists() and not out.is_dir():
        raise IndexExists(f"{out} is a file, not an index folder; choose another output path")
    path = out / MANIFEST
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise IndexExists(
                f"{out} exists and is not a searchkit index; choose another output path"
            )
        return None
    if not force:
        raise IndexExists(f"{out} already holds an index; pass force=True to replace it")
    try:  # only the version: the index may be sharded, of an older format, or unreadable
        version = json.loads(path.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, TypeError, KeyError):
        return 0
    return version if isinstance(version, int) else 0


def staging_dir(out: Path) -> Path:
    """A fresh hidden sibling of ``out``; leftovers of killed builds are removed first (the
    caller holds the writer lock, so no other build is running)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.build-*"):
        shutil.rmtree(old, ignore_errors=True)
    staging = out.parent / f".{out.name}.build-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    return staging
