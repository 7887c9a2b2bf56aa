"""What the bi-encoder and the reranker share: a model name, a batch size and a runtime, with
the model loaded on that runtime on first use: torch-free from its cached export when it has
one (``searchkit.inference.runtimes.exported``), else through sentence-transformers."""

from __future__ import annotations

import logging
import os
from typing import ClassVar, Generic, TypeVar

from searchkit.inference.resolve import canonical_name, lazy_model
from searchkit.inference.runtimes import Runtime
from searchkit.inference.runtimes.exported import Exported
from searchkit.inference.runtimes.spec import NoSpec

M = TypeVar("M")
E = TypeVar("E", bound=Exported)
# set to 0 to run every model through sentence-transformers (and torch), as before the
# torch-free path (benchmarks/cold_start.py compares both)
TORCH_FREE = "SEARCHKIT_TORCH_FREE"
log = logging.getLogger(__name__)


def torch_free_allowed() -> bool:
    """Whether ``SEARCHKIT_TORCH_FREE`` allows the torch-free path (default: yes)."""
    return os.environ.get(TORCH_FREE, "1").lower() not in ("0", "false", "no", "off")


class RuntimeModel(Generic[M, E]):
    """A sentence-transformers model run on an inference runtime, loaded lazily.

    Args:
        name: a local folder or a hub name (None: the role's default model).
        batch_size: texts (or pairs) per forward pass.
        runtime: ``torch``, ``onnx`` or ``openvino``, optionally with a precision
            (``openvino-int8``); None or ``auto``: the fastest installed one that meets
            searchkit's quality bounds for the role (see ``searchkit.inference.runtimes``).
        precision: ``fp32``, ``bf16`` or ``int8``, when ``runtime`` does not name one.
    """

    role: ClassVar[str]
    default_name: ClassVar[str]
    model_class: ClassVar[str]  # the sentence-transformers class that loads it
    exported_class: ClassVar[type[Exported]]  # its torch-free twin

    def __init__(
        self,
        name: str | None = None,
        batch_size: int = 32,
        *,
        runtime: str | Runtime | None = None,
        precision: str | None = None,
    ) -> None:
        self.name = canonical_name(name or self.default_name)
        self.batch_size = batch_size
        self.runtime = Runtime.parse(runtime, precision, role=self.role)

    @property
    def prompts(self) -> dict[str, str] | None:
        """Prompts by role that replace the model folder's own (None: the folder's)."""
        return None

    @lazy_model
    def model(self) -> M:
        """The sentence-transformers model on ``self.runtime`` (loaded, exported on first use)."""
        from searchkit.inference.runtimes.load import load_on_runtime

        return load_on_runtime(self.model_class, self.name, self.runtime, self.role, self.prompts)

    @lazy_model
    def exported(self) -> E | None:
        """The model run without torch from its cached export, or None (the reason is logged
        once, at INFO: ``--verbose``): then ``model`` serves."""
        if not torch_free_allowed():
            why = f"{TORCH_FREE} is off"
        else:
            r = self.runtime
            try:
                found = self.exported_class.find(self.name, self.role, r.name, r.precision)
                log.info("%s %s runs torch-free on %s", self.role, self.name, r)
                return found  # type: ignore[return-value]
            except (NoSpec, ImportError, OSError, RuntimeError) as err:
                # no export recorded, or one the runtime cannot run here: the torch path rebuilds
                why = str(err)
        log.info("%s %s runs through sentence-transformers (torch): %s", self.role, self.name, why)
        return None

    def load(self) -> None:
        """Load now: the torch-free model if there is one, else the sentence-transformers one."""
        if self.exported is None:
            self.model  # noqa: B018
