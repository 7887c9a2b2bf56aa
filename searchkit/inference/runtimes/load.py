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

M = TypeVar("M", bound=torch.nn.Module)
Feeds = dict[str, np.ndarray]
# the module that exports and runs each non-torch runtime:
# export(model, samples, precision, out) and engine(folder, precision)
ENGINES = {
    "onnx": "searchkit.inference.runtimes.ort",
    "openvino": "searchkit.inference.runtimes.ov",
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def load_on_runtime(model_class: str, name: str, runtime: Runtime, role: str) -> Any:
    """Load a ``SentenceTransformer`` or ``CrossEncoder`` (``model_class``; ``role`` encoder or
    reranker) on ``runtime``.

    Raises:
        ModelUnavailable: the model cannot be loaded (names it and what to do).
    """
    label = "bi-encoder" if role == "encoder" else role
    return apply_runtime(load_st_model(model_class, name, label), runtime, role)


def apply_runtime(model: M, runtime: Runtime, role: str) -> M:
    """``model`` running on ``runtime``; ``role`` is ``encoder`` or ``reranker``."""
    if runtime.name == "torch":
        return _torch(model, runtime.precision)
    transformer = model[0]  # type: ignore[index]
    hf_model = transformer.model.eval()
    names = _input_names(transformer.tokenizer)
    engine = importlib.import_module(ENGINES[runtime.name])
    artifact = f"{runtime.name}-{'int8' if runtime.precision == 'int8' else 'fp32'}"
    folder = folder_for(weights_sha256(hf_model), role, artifact)

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


def _input_names(tokenizer: Any) -> list[str]:
    """The transformer inputs the tokenizer makes, e.g. without token_type_ids for RoBERTa."""
    made = tokenizer("a", "b")
    return [name for name in INPUTS if name in made]


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
