"""OpenVINO: convert the torch model with ``openvino.convert_model``, optionally quantize it
to static int8 with NNCF on the bundled calibration sample, and run it on the CPU."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchkit.inference.runtimes.cache import compiled_folder
from searchkit.inference.runtimes.exported import threads
from searchkit.progress import quiet_third_party

if TYPE_CHECKING:
    import torch

MODEL = "model.xml"
# the hint for the parts int8 leaves in floating point is OpenVINO's own choice (bf16 on CPUs
# that have it); fp32 asks for exact f32 arithmetic
HINTS = {"fp32": "f32", "bf16": "bf16"}
Feeds = dict[str, np.ndarray]


def export(model: torch.nn.Module, samples: list[Feeds], precision: str, out: Path) -> None:
    """Write ``out/model.xml`` (+ .bin), traced on the first sample: fp32 weights, or NNCF
    static int8 calibrated on all the samples for ``int8``."""
    import openvino as ov
    import torch

    inputs = {name: torch.from_numpy(value) for name, value in samples[0].items()}
    with warnings.catch_warnings(), torch.no_grad():
        # tracing warns about Python control flow on shapes that do not matter here
        warnings.simplefilter("ignore")
        converted = ov.convert_model(model, example_input=inputs)
    if precision == "int8":
        import nncf

        # NNCF draws progress bars ("Statistics collection", "Applying Smooth Quant")
        with quiet_third_party():
            converted = nncf.quantize(
                converted,
                nncf.Dataset(samples),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(samples),
            )
    ov.save_model(converted, out / MODEL, compress_to_fp16=False)


def engine(folder: Path, precision: str) -> Callable[[Feeds], np.ndarray]:
    """A function of the inputs to the first output, on ``threads()`` threads; the compiled
    model is cached (OpenVINO's ``CACHE_DIR``), so another process does not compile it again."""
    import openvino as ov

    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads(),
        "CACHE_DIR": str(compiled_folder(folder)),
    }
    if precision in HINTS:
        config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
    compiled = ov.Core().compile_model(folder / MODEL, "CPU", config)
    local = threading.local()

    def run(feeds: Feeds) -> np.ndarray:
        # an infer request is not thread-safe: one per thread (a server's request threads)
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        request.infer(feeds)
        return request.get_output_tensor(0).data.copy()

    return run
