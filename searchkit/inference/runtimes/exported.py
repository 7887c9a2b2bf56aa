"""The torch-free path: an exported encoder or reranker run with ``tokenizers`` + its runtime.

It does what sentence-transformers does around the transformer, as its spec records
(``searchkit.inference.runtimes.spec``): texts sorted longest first (by characters, as
``SentenceTransformer.encode`` sorts them) in batches of ``batch_size``, the prompt in front,
truncation to ``max_seq_length`` and padding to the batch's longest text, the same exported
model through the same engine, then pooling and normalization (encoder) or the logits'
activation (reranker) in float32 numpy. Embeddings equal the torch path's to float32 rounding
(tests/test_torchfree.py bounds the difference).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchkit.inference.runtimes.spec import TOKENIZER, NoSpec, Spec, find_spec
from searchkit.inference.runtimes.tokenizer import FastTokenizer

# the module that exports and runs each non-torch runtime:
# export(model, samples, precision, out) and engine(folder, precision)
ENGINES = {
    "onnx": "searchkit.inference.runtimes.ort",
    "openvino": "searchkit.inference.runtimes.ov",
}
Feeds = dict[str, np.ndarray]


def threads() -> int:
    """Inference threads of both paths: ``OMP_NUM_THREADS``, else the CPUs this process may use
    (what torch picks on a machine without SMT)."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else len(os.sched_getaffinity(0))


def artifact_of(name: str, precision: str) -> str:
    """The export a runtime runs: int8 weights for int8, else fp32 ones (bf16 is a hint)."""
    return f"{name}-{'int8' if precision == 'int8' else 'fp32'}"


class Exported:
    """An exported model, its tokenizer and its engine (loaded now)."""

    def __init__(self, spec: Spec, folder: Path, runtime: str, precision: str) -> None:
        self.spec = spec
        self.tokenizer = FastTokenizer(folder / TOKENIZER)
        self._batch = FastTokenizer(folder / TOKENIZER).backend
        self.truncate_to(spec.max_seq_length)
        self._batch.enable_padding(
            direction=spec.padding_side,
            pad_id=spec.pad_id,
            pad_type_id=spec.pad_type_id,
            pad_token=spec.pad_token,
        )
        engine = importlib.import_module(ENGINES[runtime])
        self.run: Callable[[Feeds], np.ndarray] = engine.engine(spec.export_folder, precision)

    def truncate_to(self, tokens: int) -> None:
        """Read at most ``tokens`` tokens of a text or pair (longest first, as transformers)."""
        self._batch.enable_truncation(tokens, direction=self.spec.truncation_side)

    @classmethod
    def find(cls, name: str, role: str, runtime: str, precision: str) -> Exported:
        """The exported ``role`` model of ``name`` for this runtime and precision.

        Raises:
            NoSpec: why there is none (the caller falls back to the torch path).
        """
        if runtime not in ENGINES:
            raise NoSpec(f"the {runtime} runtime runs through torch")
        spec, folder = find_spec(name, role, artifact_of(runtime, precision))
        return cls(spec, folder, runtime, precision)

    def forward(self, batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The model's first output for a batch of texts (or pairs), and its attention mask."""
        made = self._batch.encode_batch(list(batch))
        arrays = {
            "input_ids": np.asarray([e.ids for e in made], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in made], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in made], dtype=np.int64),
        }
        out = self.run({name: arrays[name] for name in self.spec.inputs})
        return np.asarray(out, dtype=np.float32), arrays["attention_mask"]

    def in_batches(
        self, items: Sequence[Any], size: int, batch: Callable[[Sequence[Any]], np.ndarray]
    ) -> np.ndarray:
        """``batch`` over ``items`` longest first (sentence-transformers' order), in order."""
        lengths = [len(x) if isinstance(x, str) else sum(len(s) for s in x) for x in items]
        order = np.argsort([-n for n in lengths])
        parts = [batch([items[i] for i in order[s : s + size]]) for s in range(0, len(items), size)]
        out = np.concatenate(parts)
        return out[np.argsort(order)]


class ExportedEncoder(Exported):
    """The bi-encoder without torch: ``encode(texts, role)`` as ``encode_query`` /
    ``encode_document`` with ``normalize_embeddings=True``."""

    def encode(self, texts: Sequence[str], role: str, batch_size: int) -> np.ndarray:
        prompt = self.spec.prompts.get(role) or ""
        return self.in_batches(list(texts), batch_size, lambda b: self._embed(b, prompt))

    def _embed(self, batch: Sequence[str], prompt: str) -> np.ndarray:
        tokens, mask = self.forward([prompt + t for t in batch])
        pooled = pool(tokens, mask, self.spec.pooling)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class ExportedReranker(Exported):
    """The CrossEncoder without torch: ``predict(pairs, batch_size)`` scores."""

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int) -> np.ndarray:
        return self.in_batches(list(pairs), batch_size, self._score)

    def _score(self, batch: Sequence[tuple[str, str]]) -> np.ndarray:
        logits, _ = self.forward(batch)
        scores = logits.reshape(len(batch))
        if self.spec.activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        return scores.astype(np.float32)


def pool(tokens: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors of token vectors ``(batch, tokens, dim)`` under ``mask``, as
    sentence-transformers' Pooling computes them."""
    weights = mask[:, :, None].astype(np.float32)
    if mode == "cls":  # the first real token
        return tokens[np.arange(len(tokens)), mask.argmax(axis=1)]
    if mode == "max":
        return np.where(weights > 0, tokens, -np.inf).max(axis=1)
    total = (tokens * weights).sum(axis=1)
    return total / np.maximum(weights.sum(axis=1), 1e-9)
