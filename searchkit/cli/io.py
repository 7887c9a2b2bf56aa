"""What only the CLI reads: ids from flags, and which index a command without one means."""

from __future__ import annotations

import os
from pathlib import Path

from searchkit.errors import IndexNotFound, InvalidParameter
from searchkit.index.manifest import MANIFEST
from searchkit.index.paths import INDEX_ROOT

INDEX_ENV = "SEARCHKIT_INDEX"


def read_ids(ids: str | None, ids_file: str | Path | None) -> list[str]:
    """Ids from a comma-separated list and/or a file of one id per line (blank lines skipped)."""
    found = [i.strip() for i in (ids or "").split(",") if i.strip()]
    if ids_file is not None:
        try:
            text = Path(ids_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidParameter(f"{ids_file}: cannot read the ids file ({err})") from None
        found.extend(line.strip() for line in text.splitlines() if line.strip())
    if not found:
        raise InvalidParameter("no ids given: pass --ids a17,b42 or --ids-file ids.txt")
    return found


def locate_index(explicit: str | Path | None = None, root: Path = INDEX_ROOT) -> tuple[Path, str]:
    """The index a query should use, and why it was chosen.

    In order: ``explicit``; ``$SEARCHKIT_INDEX``; the only index under ``root``; the most
    recently built one there.

    Raises:
        IndexNotFound: nothing given and no index under ``root``.
    """
    if explicit is not None:
        return Path(explicit), "given"
    if env := os.environ.get(INDEX_ENV):
        return Path(env), f"from ${INDEX_ENV}"
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not found:
        raise IndexNotFound(
            f"no index under ./{root}; build one with: searchkit index CORPUS.jsonl, "
            f"or pass --index PATH (or set ${INDEX_ENV})"
        )
    if len(found) == 1:
        return found[0], f"the only index under ./{root}"
    from searchkit.index.sharded import read_manifest  # a sharded index's parent too

    newest = max(found, key=lambda p: read_manifest(p).created)
    return newest, f"the most recently built of {len(found)} indexes under ./{root}"
