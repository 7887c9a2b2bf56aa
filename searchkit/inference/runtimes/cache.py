"""The cache of exported and quantized models: one folder per model, role and runtime.

A folder is built once in a temporary sibling, a marker listing every file's sha256 is written
last, and the folder is renamed into place; a folder without a valid marker (a killed export)
or whose files no longer match it (damage) is rebuilt. The key hashes the model's weights, the
runtime and the library versions, so an updated model or library never reuses a stale export.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from searchkit.index.fsio import fsync_tree, sha256_file

if TYPE_CHECKING:
    import torch

MARKER = "searchkit-cache.json"
CACHE_FORMAT = 1
LIBRARIES = ("torch", "transformers", "onnxruntime", "onnx", "openvino", "nncf")
# threads of this process that load the same model export it once (other processes race safely)
_BUILDING = threading.Lock()


def cache_root() -> Path:
    """``$SEARCHKIT_CACHE/models``, else ``$XDG_CACHE_HOME/searchkit/models``, by default
    ``~/.cache/searchkit/models``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = os.environ.get("SEARCHKIT_CACHE") or (
        f"{xdg}/searchkit" if xdg else "~/.cache/searchkit"
    )
    return Path(root).expanduser() / "models"


def compiled_folder(export: Path) -> Path:
    """Where a runtime keeps its compiled form of the export folder ``export`` (OpenVINO's
    model cache): beside the cache of exports, per export."""
    return cache_root().parent / "compiled" / export.name


def weights_sha256(module: torch.nn.Module) -> str:
    """A digest of a torch module's parameters and buffers (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().view(-1).view(dtype=_u8()).numpy().tobytes())
    return digest.hexdigest()


def _u8() -> torch.dtype:
    import torch

    return torch.uint8


def folder_for(weights: str, role: str, artifact: str) -> Path:
    """The cache folder of ``artifact`` (e.g. ``openvino-int8``) made from these weights."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = version(lib)
        except PackageNotFoundError:
            versions[lib] = None
    what = {"format": CACHE_FORMAT, "weights": weights, "role": role, "artifact": artifact}
    key = json.dumps({**what, **versions}, sort_keys=True)
    return cache_root() / f"{role}-{artifact}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def ensure(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder``, built by ``build(tmp)`` unless a complete copy is already there."""
    if is_complete(folder):
        return folder
    with _BUILDING:
        if is_complete(folder):
            return folder
        _build(folder, build)
    return folder


def _build(folder: Path, build: Callable[[Path], None]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        build(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        marker = {str(p.relative_to(tmp)): sha256_file(p) for p in files}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        fsync_tree(tmp)
        if folder.exists() and not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)  # partial or damaged: replace it
        try:
            os.replace(tmp, folder)
        except OSError:
            # another process finished the same export first; use its copy
            if not is_complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` has its marker and every file it lists, unchanged."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        return all(sha256_file(folder / name) == sha for name, sha in marker.items())
    except (OSError, ValueError, AttributeError):
        return False
