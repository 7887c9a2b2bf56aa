"""multilingual-e5-small (the offline 4-bit-derived copy) against all-MiniLM-L6-v2, same texts.

Both models embed the same Chinese and English passages (DRCD paragraphs, rebuilt from
drcd-sent's sentences, and SciFact abstracts, shuffled together) through
``Encoder.encode_documents`` on each runtime, in alternating rounds. Tokens are counted with
each model's own tokenizer, prompt and special tokens included, truncated at what it reads
(256 for MiniLM, 512 for e5): tokens/s is the tokens a model reads per second, and the e5 /
MiniLM ratio of it is the figure with a target (>= 0.40). Padding: the tokens a model pushes
through its batches (each padded to its longest text) per token read, for the encoder's batches
(``Encoder.batches``: most tokens first) and for fixed batches sorted by characters. Shapes:
tokens/s of a forward pass on fixed (batch, length) inputs (best of two), which separates the
per-layer cost from the window length.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import numpy as np

NAME = "multilingual"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
E5 = "intfloat/multilingual-e5-small"
TARGET = 0.40
SHAPES = (128, 256, 512)


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument(
        "--zh", type=Path, default=common.BEIR_ROOT / "drcd-sent", help="drcd-sent BEIR folder"
    )
    parser.add_argument(
        "--en", type=Path, default=common.BEIR_ROOT / "scifact", help="English BEIR folder"
    )
    parser.add_argument("--docs", type=int, default=64, help="passages of each language")
    parser.add_argument(
        "--runtimes",
        type=lambda text: [p for p in text.split(",") if p],
        default=["auto", "torch-fp32"],
        help="comma-separated runtimes (auto: what Encoder() picks on this machine)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (order alternates)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per batch")
    parser.add_argument("--shape-batch", type=int, default=8, help="batch of the shape passes")
    args, header = common.start(parser, NAME)
    n = args.limit or args.docs
    texts = _paragraphs(args.zh, n) + _abstracts(args.en, n)
    random.Random(0).shuffle(texts)
    results: dict[str, Any] = {"texts": len(texts), "target_ratio": TARGET, "runtimes": {}}
    for runtime in args.runtimes:
        results["runtimes"][runtime] = _measure(runtime, texts, args)
    common.report(NAME, args, header, _tables(results, args), results)


def _paragraphs(root: Path, n: int) -> list[str]:
    """The first ``n`` DRCD paragraphs: drcd-sent's sentences joined by ``paragraph_id``."""
    paragraphs: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for doc in _jsonl(root):
        key = doc["metadata"]["paragraph_id"]
        if key not in paragraphs and len(paragraphs) == n:
            break
        paragraphs.setdefault(key, []).append(doc["text"])
        titles[key] = doc.get("title", "")
    return [f"{titles[k]} {''.join(p)}".strip() for k, p in paragraphs.items()]


def _abstracts(root: Path, n: int) -> list[str]:
    texts = []
    for doc in _jsonl(root):
        texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
        if len(texts) == n:
            break
    return texts


def _jsonl(root: Path) -> Any:
    path = next(p for p in (root / "corpus.jsonl.gz", root / "corpus.jsonl") if p.exists())
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _measure(runtime: str, texts: list[str], args: Any) -> dict[str, Any]:
    from searchkit.inference.encoder import Encoder

    models = {}
    for name in (MINILM, E5):
        encoder = Encoder(name, batch_size=args.batch_size, runtime=runtime)
        _, seconds = common.timed(lambda e=encoder: e.model)
        common.note(f"{name} on {encoder.runtime} (asked: {runtime}): loaded in {seconds:.1f} s")
        models[name] = (encoder, seconds)
    for encoder, _ in models.values():
        encoder.encode_documents(texts[: args.batch_size])  # warm: first shapes compile
    seconds = dict.fromkeys(models, 0.0)
    for r in range(args.rounds):
        for name in list(models)[:: 1 if r % 2 == 0 else -1]:
            seconds[name] += common.timed(models[name][0].encode_documents, texts)[1]
    out: dict[str, Any] = {}
    for name, (encoder, load_seconds) in models.items():
        read = np.asarray(_tokens(encoder, texts))
        out[name] = {
            "runtime": str(encoder.runtime),
            "load_seconds": load_seconds,
            "max_seq_length": encoder.max_seq_length,
            "tokens_read": int(read.sum()),
            "tokens_untruncated": int(sum(_tokens(encoder, texts, truncate=False))),
            "docs_per_s": len(texts) * args.rounds / seconds[name],
            "tokens_per_s": float(read.sum()) * args.rounds / seconds[name],
            "padding": _padding(encoder, read, texts),
            "shapes_tokens_per_s": _shapes(encoder, args.shape_batch),
        }
    e5, minilm = out[E5], out[MINILM]
    out["ratio_tokens_per_s"] = common.ratio(e5["tokens_per_s"], minilm["tokens_per_s"])
    out["ratio_docs_per_s"] = common.ratio(e5["docs_per_s"], minilm["docs_per_s"])
    out["meets_target"] = out["ratio_tokens_per_s"] >= TARGET
    return out


def _tokens(encoder: Any, texts: Sequence[str], truncate: bool = True) -> list[int]:
    """Tokens of each passage as the model reads it: prompt and special tokens included."""
    prompt = (encoder.prompts or {}).get("document", "")
    made = encoder.model.tokenizer(
        [prompt + t for t in texts], truncation=truncate, max_length=encoder.max_seq_length
    )
    return [len(ids) for ids in made["input_ids"]]


def _padding(encoder: Any, read: np.ndarray, texts: Sequence[str]) -> dict[str, float]:
    """Tokens in padded batches per token read: the encoder's batches, and fixed batches of
    texts sorted by characters (searchkit's order before it counted tokens)."""
    by_chars = np.argsort([-len(t) for t in texts], kind="stable").tolist()
    size = encoder.batch_size

    def padded(batches: list[list[int]]) -> float:
        return float(sum(read[b].max() * len(b) for b in batches) / read.sum())

    return {
        "searchkit": padded(encoder.batches(encoder.token_counts(texts))),
        "characters_sorted": padded([by_chars[s : s + size] for s in range(0, len(texts), size)]),
    }


def _shapes(encoder: Any, batch: int) -> dict[str, float]:
    """Tokens/s of a forward pass of the transformer on (batch, length) token ids (best of 2)."""
    import torch

    transformer = encoder.model[0]
    out = {}
    for length in SHAPES:
        ids = torch.randint(1000, 2000, (batch, length))
        feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        feats["token_type_ids"] = torch.zeros_like(ids)
        with torch.inference_mode():
            transformer(dict(feats))  # warm: a new shape compiles
            seconds = min(common.timed(transformer, dict(feats))[1] for _ in range(2))
        out[str(length)] = batch * length / seconds
    return out


def _tables(r: dict, args: Any) -> list[common.Table]:
    speed = common.Table(
        f"{r['texts']} passages (half DRCD paragraphs, half SciFact abstracts), "
        f"batch {args.batch_size}, {args.rounds} alternating rounds",
        ["runtime", "model", "reads", "tokens read", "docs/s", "tokens/s", "e5 / MiniLM",
         "padding", "padding by chars", "load s"],
        note=f"e5 / MiniLM: ratio of tokens/s (target >= {TARGET}), docs/s in brackets. "
        "padding: tokens through the batches per token read.",
    )  # fmt: skip
    shapes = common.Table(
        f"one forward pass, batch {args.shape_batch}: tokens/s at each length",
        ["runtime", "model", *map(str, SHAPES), *(f"e5 / MiniLM at {n}" for n in SHAPES)],
        note="equal lengths: the ratio is the per-layer cost (12 layers against 6); it falls "
        "with length because attention grows with the square of it.",
    )
    for asked, m in r["runtimes"].items():
        for name in (MINILM, E5):
            e = m[name]
            runtime = asked if asked == e["runtime"] else f"{asked}: {e['runtime']}"
            mine = name == E5
            ratio = f"{m['ratio_tokens_per_s']:.3f} ({m['ratio_docs_per_s']:.3f})" if mine else ""
            speed.add(runtime, name.split("/")[1], e["max_seq_length"], e["tokens_read"],
                      e["docs_per_s"], e["tokens_per_s"], ratio, e["padding"]["searchkit"],
                      e["padding"]["characters_sorted"], e["load_seconds"])  # fmt: skip
            per = [e["shapes_tokens_per_s"][str(n)] for n in SHAPES]
            base = [m[MINILM]["shapes_tokens_per_s"][str(n)] for n in SHAPES]
            ratios = [p / b for p, b in zip(per, base, strict=True)] if mine else ["", "", ""]
            shapes.add(runtime, name.split("/")[1], *per, *ratios)
    return [speed, shapes]


if __name__ == "__main__":
    main()
