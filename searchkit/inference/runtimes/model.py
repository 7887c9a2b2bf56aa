"""What the bi-encoder and the reranker share: a model name, a batch size and a runtime, with
the model loaded on that runtime on first use."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from searchkit.inference.resolve import canonical_name, lazy_model
from searchkit.inference.runtimes import Runtime

M = TypeVar("M")


class RuntimeModel(Generic[M]):
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

    @lazy_model
    def model(self) -> M:
        """The sentence-transformers model on ``self.runtime`` (loaded, exported on first use)."""
        from searchkit.inference.runtimes.load import load_on_runtime

        return load_on_runtime(self.model_class, self.name, self.runtime, self.role)
