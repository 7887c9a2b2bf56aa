"""What the torch-free path needs to run an exported model, found without torch.

When the torch path (``searchkit.inference.runtimes.load``) puts a model on ONNX Runtime or
OpenVINO, it also writes a *spec* folder into the cache: the model's fast tokenizer as
``tokenizer.json`` (exactly the one sentence-transformers used) and ``spec.json``, what
sentence-transformers does around the transformer (prompts, ``max_seq_length``, truncation and
padding sides, pooling, normalization; a reranker's score activation) and which export folder
holds the model. The spec folder is keyed by the role, the runtime artifact and the model
folder's files (names, sizes, modification times): a process computes that key from the model
name alone, with no torch, and a changed model file changes it. A spec whose export folder is
gone or damaged is not used (the torch path then rebuilds both).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from searchkit.inference.resolve import model_files
from searchkit.inference.runtimes.cache import cache_root, ensure, is_complete

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SPEC = "spec.json"
TOKENIZER = "tokenizer.json"
SPEC_FORMAT = 1
POOLINGS = ("mean", "cls", "max")
ACTIVATIONS = ("sigmoid", "identity")
log = logging.getLogger(__name__)


class NoSpec(Exception):
    """Why a model has no usable spec (the message is the reason, logged by the fallback)."""


@dataclass(frozen=True)
class Spec:
    """How to run one exported model without torch (see the module docstring)."""

    role: str  # encoder or reranker
    artifact: str  # e.g. openvino-int8: the export folder's runtime and weights
    export: str  # the export folder's name under ``cache_root()``
    inputs: list[str]  # the transformer inputs the tokenizer makes
    max_seq_length: int
    truncation_side: str = "right"
    padding_side: str = "right"
    pad_token: str = "[PAD]"
    pad_id: int = 0
    pad_type_id: int = 0
    # encoder: the prompt put in front of each role's texts (None: none), pooling and size
    prompts: dict[str, str | None] = field(default_factory=dict)
    pooling: str = "mean"
    normalize: bool = True
    dim: int = 0
    # reranker: the activation of the logits (sigmoid or identity)
    activation: str = "identity"
    format: int = SPEC_FORMAT

    @property
    def export_folder(self) -> Path:
        return cache_root() / self.export


def spec_folder(name: str, role: str, artifact: str) -> Path:
    """The spec folder of model ``name`` (a canonical name) for ``role`` on ``artifact``.

    Raises:
        NoSpec: the model's files cannot be found locally.
    """
    files = model_files(name)
    if files is None:
        raise NoSpec(f"the files of {name!r} are not on this machine")
    stats = [(str(p.relative_to(files)), *_stat(p)) for p in sorted(files.rglob("*"))]
    what = {"format": SPEC_FORMAT, "role": role, "artifact": artifact, "folder": str(files)}
    key = json.dumps({**what, "files": stats}, sort_keys=True)
    return cache_root() / f"spec-{role}-{artifact}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns) if path.is_file() else (0, 0)


def write_spec(name: str, spec: Spec, tokenizer_json: str) -> None:
    """Record ``spec`` for ``name`` (replacing one that names another export folder)."""
    try:
        folder = spec_folder(name, spec.role, spec.artifact)
    except NoSpec:
        return  # a model loaded from nowhere we can key: the torch path only
    if is_complete(folder):
        try:
            if read_spec(folder) == spec:
                return
        except NoSpec:
            pass
        shutil.rmtree(folder, ignore_errors=True)

    def build(out: Path) -> None:
        (out / TOKENIZER).write_text(tokenizer_json, encoding="utf-8")
        (out / SPEC).write_text(json.dumps(asdict(spec), indent=1, sort_keys=True) + "\n")

    ensure(folder, build)


def input_names(tokenizer: Any) -> list[str]:
    """The transformer inputs the tokenizer makes, e.g. without token_type_ids for RoBERTa."""
    made = tokenizer("a", "b")
    return [name for name in INPUTS if name in made]


def record_spec(
    name: str,
    model: Any,
    role: str,
    artifact: str,
    export: Path,
    prompts: dict[str, str] | None,
) -> None:
    """Write the spec of a sentence-transformers ``model`` (loaded from ``name``, exported into
    ``export``) when the torch-free path can reproduce it; log why not otherwise."""
    try:
        spec = spec_of(model, role, artifact, export, prompts)
    except NoSpec as why:
        log.info("%s %s has no torch-free path: %s", role, name, why)
        return
    write_spec(name, spec, model[0].tokenizer.backend_tokenizer.to_str())


def spec_of(
    model: Any, role: str, artifact: str, export: Path, prompts: dict[str, str] | None
) -> Spec:
    """What the torch-free path must do to give ``model``'s outputs.

    Raises:
        NoSpec: ``model`` does something it does not (a module, a pooling, a slow tokenizer).
    """
    modules = [type(m).__name__ for m in model]
    transformer = model[0]
    tokenizer = transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise NoSpec("its tokenizer is not a fast (Rust) one")
    if getattr(transformer, "do_lower_case", False) or not model.max_seq_length:
        raise NoSpec("it lowercases texts, or has no max_seq_length")
    common: dict[str, Any] = {
        "role": role,
        "artifact": artifact,
        "export": export.name,
        "inputs": input_names(tokenizer),
        "max_seq_length": int(model.max_seq_length),
        "truncation_side": tokenizer.truncation_side,
        "padding_side": tokenizer.padding_side,
        "pad_token": tokenizer.pad_token,
        "pad_id": int(tokenizer.pad_token_id),
        "pad_type_id": int(tokenizer.pad_token_type_id),
    }
    if role == "reranker":
        activation = type(model.activation_fn).__name__.lower()
        if modules != ["Transformer"] or model.num_labels != 1 or activation not in ACTIVATIONS:
            raise NoSpec(f"modules {modules}, {model.num_labels} labels, activation {activation}")
        return Spec(**common, activation=activation)
    if modules[:2] != ["Transformer", "Pooling"] or set(modules[2:]) - {"Normalize"}:
        raise NoSpec(f"its modules are {modules}, not Transformer, Pooling[, Normalize]")
    pooling = model[1]
    mode = pooling.pooling_mode
    if mode not in POOLINGS or not pooling.include_prompt:
        raise NoSpec(f"pooling {mode!r} (include_prompt={pooling.include_prompt})")
    roles = {r: effective_prompt(model, prompts, r) for r in ("query", "document")}
    dim = int(model[1].get_embedding_dimension())
    return Spec(**common, prompts=roles, pooling=mode, dim=dim)


def effective_prompt(model: Any, prompts: dict[str, str] | None, role: str) -> str | None:
    """The prompt ``encode_query`` / ``encode_document`` put in front of ``role`` texts when
    given ``prompts[role]`` (an explicit one) or None (the model's own for the role, else its
    default prompt)."""
    if prompts is not None:
        return prompts[role]
    own = model.prompts
    # the names encode_query / encode_document look for, in their order
    for key in ("query",) if role == "query" else ("document", "passage", "corpus"):
        if key in own:
            return own[key]
    return own.get(model.default_prompt_name) if model.default_prompt_name else None


def read_spec(folder: Path) -> Spec:
    """The spec in ``folder``.

    Raises:
        NoSpec: none there, or written by another searchkit.
    """
    try:
        data = json.loads((folder / SPEC).read_text(encoding="utf-8"))
        spec = Spec(**data)
    except (OSError, ValueError, TypeError) as err:
        raise NoSpec(f"no readable spec in {folder} ({err})") from None
    if spec.format != SPEC_FORMAT:
        raise NoSpec(f"the spec in {folder} has format {spec.format}, not {SPEC_FORMAT}")
    return spec


def find_spec(name: str, role: str, artifact: str) -> tuple[Spec, Path]:
    """The spec of ``name`` and its folder, checked whole with its export folder.

    Raises:
        NoSpec: says why (never exported on this runtime, model files changed, damaged cache).
    """
    folder = spec_folder(name, role, artifact)
    if not is_complete(folder):
        raise NoSpec(
            f"{name!r} has not been exported for {artifact} with these model files in "
            f"{cache_root()} yet (the first load through sentence-transformers does it)"
        )
    spec = read_spec(folder)
    if not is_complete(spec.export_folder):
        raise NoSpec(f"the export {spec.export_folder} is missing or damaged")
    return spec, folder
