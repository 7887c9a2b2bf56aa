"""Apply a runtime to a loaded sentence-transformers model (SentenceTransformer or CrossEncoder).

torch runtimes change the model in place (bf16 weights, dynamic int8 Linear layers). ONNX
Runtime and OpenVINO replace only the transformer's forward pass: the model is exported once
(and quantized) into the cache, and a :class:`Compiled` module stands in for the Hugging Face
model, so tokenization, prompts, pooling, normalization and score activations stay those of
sentence-transformers.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from searchkit.inference.resolve import load_st_model
from searchkit.inference.runtimes import Runtime
from searchkit.inference.runtimes.cache import ensure, folder_for, weights_sha256
from searchkit.inference.runtimes.calibration import calibration_inputs
from searchkit.inference.runtimes.exported import ENGINES, artifact_of
from searchkit.inference.runtimes.spec import input_names, record_spec
from searchkit.progress import quiet_third_party

M = TypeVar("M", bound=torch.nn.Module)
Feeds = dict[str, np.ndarray]


def load_on_runtime(
    model_class: str,
    name: str,
    runtime: Runtime,
    role: str,
    prompts: dict[str, str] | None = None,
) -> Any:
    """Load a ``SentenceTransformer`` or ``CrossEncoder`` (``model_class``; ``role`` encoder or
    reranker) on ``runtime``; on ONNX Runtime or OpenVINO, also record its spec for the
    torch-free path (``prompts``: the encoder's explicit prompts, see ``Encoder.prompts``).

    Raises:
        ModelUnavailable: the model cannot be loaded (names it and what to do).
    """
    label = "bi-encoder" if role == "encoder" else role
    with quiet_third_party():
        model = load_st_model(model_class, name, label)
        folder = None if runtime.name == "torch" else export_folder(model, runtime, role)
        model = apply_runtime(model, runtime, role, folder)
    if folder is not None:
        record_spec(
            name, model, role, artifact_of(runtime.name, runtime.precision), folder, prompts
        )
    return model


def export_folder(model: torch.nn.Module, runtime: Runtime, role: str) -> Path:
    """The cache folder of ``model``'s export for ``runtime`` (keyed by its weights)."""
    hf_model = model[0].model.eval()  # type: ignore[index]
    return folder_for(weights_sha256(hf_model), role, artifact_of(runtime.name, runtime.precision))


def apply_runtime(model: M, runtime: Runtime, role: str, folder: Path | None = None) -> M:
    """``model`` running on ``runtime``; ``role`` is ``encoder`` or ``reranker``; ``folder``:
    its export folder, if already computed."""
    if runtime.name == "torch":
        return _torch(model, runtime.precision)
    transformer = model[0]  # type: ignore[index]
    hf_model = transformer.model.eval()
    names = input_names(transformer.tokenizer)
    engine = importlib.import_module(ENGINES[runtime.name])
    folder = folder or export_folder(model, runtime, role)

    def build(out: Path) -> None:
        samples = calibration_inputs(transformer, role, names)
        engine.export(_Traceable(hf_model), samples, runtime.precision, out)

    run = engine.engine(ensure(folder, build), runtime.precision)
    output = transformer.modality_config["text"]["method_output_name"]
    transformer.model = Compiled(run, hf_model.config, names, output)
    return model


def _torch(model: M, precision: str) -> M:
    if precision == "bf16":
        return model.bfloat16()
    if precision == "int8":
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated for torchao, which does not install here
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    return model


class _Traceable(torch.nn.Module):
    """The Hugging Face model as a function of tensors to its first output, for export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=False, **extra
        )
        return out[0]


class Compiled(torch.nn.Module):
    """Stands in for a Hugging Face model inside sentence-transformers' Transformer module:
    takes its tensors, runs an exported model, returns ``{output: tensor}``."""

    def __init__(
        self, run: Callable[[Feeds], np.ndarray], config: Any, names: list[str], output: str
    ) -> None:
        super().__init__()
        self.run = run
        self.config = config
        self.names = names
        self.output = output

    def forward(self, **inputs: Any) -> dict[str, torch.Tensor]:
        feeds = {name: inputs[name].numpy().astype(np.int64, copy=False) for name in self.names}
        return {self.output: torch.from_numpy(np.asarray(self.run(feeds), dtype=np.float32))}
