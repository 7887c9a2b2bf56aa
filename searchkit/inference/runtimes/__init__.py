"""Inference runtimes for the bi-encoder and the cross-encoder: what to run a model with.

A :class:`Runtime` is a name (``torch``, ``onnx``, ``openvino``) and a precision (``fp32``,
``bf16``, ``int8``), written ``openvino-int8`` or given as two options. This module is light
(no torch import): the CLI and the manifest use it. ``searchkit.inference.runtimes.load``
applies one to a
loaded sentence-transformers model; the exported and quantized models are cached by
``searchkit.inference.runtimes.cache``.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

from searchkit.errors import InvalidParameter, PrecisionFallbackWarning, RuntimeUnavailable
from searchkit.index.sections import EncoderSection

# precisions of each runtime, the first being the default when only the runtime is named
RUNTIMES: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "int8"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
# the modules a runtime needs, and the pip extra that installs them
NEEDS: dict[str, tuple[str, ...]] = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino",)}
NEEDS_INT8: dict[str, tuple[str, ...]] = {"openvino": ("nncf",)}
AUTO = "auto"
# What "auto" picks, fastest first, among the combinations that met the quality bounds on
# SciFact (nDCG@10 loss <= 1% for the encoder, <= 0.5% for the reranker; benchmarks/README.md):
# the first one installed wins. openvino-int8 lost 1.2% as a reranker, so it is not one here.
PREFERRED: dict[str, tuple[str, ...]] = {
    "encoder": ("openvino-int8", "openvino-bf16", "torch-bf16", "openvino-fp32", "torch-fp32"),
    "reranker": ("openvino-bf16", "torch-bf16", "openvino-fp32", "torch-fp32"),
}


@dataclass(frozen=True)
class Runtime:
    """An inference runtime and numeric precision, e.g. ``Runtime("openvino", "int8")``.

    Example::

        Runtime.parse("openvino-int8") == Runtime.parse("openvino", "int8")
    """

    name: str = "torch"
    precision: str = "fp32"

    def __str__(self) -> str:
        return f"{self.name}-{self.precision}"

    def to_dict(self) -> dict[str, str]:
        return {"runtime": self.name, "precision": self.precision}

    @classmethod
    def parse(
        cls,
        runtime: str | Runtime | None = None,
        precision: str | None = None,
        *,
        role: str = "encoder",
    ) -> Runtime:
        """A checked runtime from ``name``, ``name-precision`` or ``auto`` (None).

        ``auto`` is the fastest installed combination that meets searchkit's quality bounds
        (with ``precision``, the first preferred one of that precision). bf16 on a CPU without
        native bf16 falls back to fp32 with a ``PrecisionFallbackWarning``.

        Raises:
            InvalidParameter: an unknown runtime or precision.
            RuntimeUnavailable: the runtime's libraries are not installed (names the pip extra).
        """
        if isinstance(runtime, Runtime):
            runtime, precision = runtime.name, precision or runtime.precision
        if runtime is None or runtime == AUTO:
            return _auto(role, precision)
        name, _, suffix = runtime.partition("-")
        if suffix and precision and suffix != precision:
            raise InvalidParameter(f"runtime {runtime!r} and precision {precision!r} disagree")
        spec = _checked(name, suffix or precision)
        require(spec)
        return spec.supported()

    def supported(self) -> Runtime:
        """This runtime, or its fp32 twin (with a warning) when the CPU lacks native bf16."""
        if self.precision != "bf16" or cpu_has_bf16():
            return self
        warnings.warn(
            f"this CPU has no native bf16 (avx512_bf16 or amx_bf16): using {self.name}-fp32",
            PrecisionFallbackWarning,
            stacklevel=3,
        )
        return Runtime(self.name, "fp32")

    @property
    def missing(self) -> list[str]:
        """The modules this runtime needs that are not installed."""
        needed = NEEDS.get(self.name, ())
        if self.precision == "int8":
            needed += NEEDS_INT8.get(self.name, ())
        return [m for m in needed if importlib.util.find_spec(m) is None]


def from_manifest(encoder: EncoderSection) -> Runtime:
    """The runtime an index's vectors were made with (torch fp32 for older indexes)."""
    return Runtime(encoder.runtime or "torch", encoder.precision or "fp32")


def require(spec: Runtime) -> None:
    """Raise ``RuntimeUnavailable`` naming the pip extra when ``spec`` is not installed."""
    if missing := spec.missing:
        raise RuntimeUnavailable(
            f"the {spec} runtime needs {', '.join(missing)}, which is not installed: "
            f"pip install 'searchkit[{spec.name}]' (or choose the torch runtime)"
        )


def _checked(name: str, precision: str | None) -> Runtime:
    if name not in RUNTIMES:
        raise InvalidParameter(
            f"unknown runtime {name!r}; choose one of: {AUTO}, {', '.join(RUNTIMES)}"
        )
    precision = precision or RUNTIMES[name][0]
    if precision not in RUNTIMES[name]:
        raise InvalidParameter(
            f"unknown precision {precision!r} for the {name} runtime; choose one of: "
            f"{', '.join(RUNTIMES[name])}"
        )
    return Runtime(name, precision)


def _auto(role: str, precision: str | None) -> Runtime:
    for text in PREFERRED[role]:
        spec = _checked(*text.split("-"))
        if precision not in (None, spec.precision) or spec.missing:
            continue
        if spec.precision == "bf16" and not cpu_has_bf16():
            continue
        return spec
    return _checked("torch", precision)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (x86 avx512_bf16 or AMX; arm64 bf16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
