"""ONNX Runtime: export with ``torch.onnx.export``, optionally quantize the weights to int8
(dynamic, per channel: per-tensor int8 lost too much), and run on the CPU execution provider."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from searchkit.inference.runtimes.exported import threads

if TYPE_CHECKING:
    import torch

FP32 = "model.onnx"
INT8 = "model-int8.onnx"
OPSET = 17
Feeds = dict[str, np.ndarray]


def export(model: torch.nn.Module, samples: list[Feeds], precision: str, out: Path) -> None:
    """Write ``out/model.onnx`` (and ``model-int8.onnx`` for ``int8``), traced on the first
    sample; the others are unused: dynamic quantization measures activations at run time."""
    import torch

    example = samples[0]
    names = list(example)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "output"]}
    args = tuple(torch.from_numpy(example[name]) for name in names)
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated but needs no onnxscript and handles BERT well
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, args, str(out / FP32), input_names=names, output_names=["output"],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it logs a pre-processing tip to the root logger
        try:
            quantize_dynamic(out / FP32, out / INT8, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        (out / FP32).unlink()


def engine(folder: Path, precision: str) -> Callable[[Feeds], np.ndarray]:
    """A function of the inputs to the first output, on ``threads()`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    path = folder / (INT8 if precision == "int8" else FP32)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(feeds: Feeds) -> np.ndarray:
        return session.run(None, feeds)[0]

    return run
