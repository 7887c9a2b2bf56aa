"""Known models and what each needs: prompts, maximum length, languages, dimension.

The encoder and the reranker look a model up here by its hub name (or, for a local folder, by
the name its folder records, see :func:`lookup`) and apply what it needs automatically: e5
models read ``query: `` / ``passage: ``, BAAI's Chinese bge v1.5 models read an instruction in
front of queries only, bge-m3 reads nothing. An unknown model gets no prompt (a model folder's
own ``config_sentence_transformers.json`` prompts still apply, sentence-transformers reads them).

The defaults per language live here as well (``default_encoder`` / ``default_reranker``):
English keeps today's models; any other language gets the multilingual ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENGLISH_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
ENGLISH_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"
MULTILINGUAL_ENCODER = "intfloat/multilingual-e5-small"
MULTILINGUAL_RERANKER = "BAAI/bge-reranker-base"
ENGLISH = ("en",)
# multilingual-e5 and bge-m3 were trained on include all of these
MULTI = ("multilingual", "en", "zh", "ja", "ko", "de", "fr", "es", "ru", "ar")
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
E5 = {"query": "query: ", "document": "passage: "}


@dataclass(frozen=True)
class ModelInfo:
    """What one model needs. ``prompts`` maps ``query`` / ``document`` to the text put in front
    of each (a role missing from it gets nothing)."""

    name: str
    kind: str  # "encoder" or "reranker"
    languages: tuple[str, ...]
    max_seq_length: int
    dim: int | None = None  # embedding size (encoders)
    prompts: dict[str, str] = field(default_factory=dict)

    def prompt(self, role: str) -> str:
        """The prefix for ``role`` (``query`` or ``document``), or ``""``."""
        return self.prompts.get(role, "")


def _e5(name: str, dim: int, languages: tuple[str, ...]) -> ModelInfo:
    return ModelInfo(name, "encoder", languages, 512, dim, dict(E5))


def _bge_zh(name: str, dim: int) -> ModelInfo:
    return ModelInfo(name, "encoder", ("zh",), 512, dim, {"query": BGE_ZH_QUERY})


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(ENGLISH_ENCODER, "encoder", ENGLISH, 256, 384),
        ModelInfo(ENGLISH_RERANKER, "reranker", ENGLISH, 512),
        _e5(MULTILINGUAL_ENCODER, 384, MULTI),
        _e5("intfloat/multilingual-e5-base", 768, MULTI),
        _e5("intfloat/multilingual-e5-large", 1024, MULTI),
        _e5("intfloat/e5-small-v2", 384, ENGLISH),
        _e5("intfloat/e5-base-v2", 768, ENGLISH),
        _e5("intfloat/e5-large-v2", 1024, ENGLISH),
        _bge_zh("BAAI/bge-small-zh-v1.5", 512),
        _bge_zh("BAAI/bge-base-zh-v1.5", 768),
        _bge_zh("BAAI/bge-large-zh-v1.5", 1024),
        ModelInfo("BAAI/bge-m3", "encoder", MULTI, 8192, 1024),
        ModelInfo(MULTILINGUAL_RERANKER, "reranker", ("en", "zh"), 512),
        ModelInfo("BAAI/bge-reranker-v2-m3", "reranker", MULTI, 8192),
    )
}


def lookup(name: str) -> ModelInfo | None:
    """The catalog entry of a hub name, or None for a model searchkit knows nothing about."""
    return MODELS.get(name)


def prompt(name: str, role: str) -> str:
    """The prefix ``name`` wants in front of a ``role`` text (``query`` or ``document``)."""
    info = lookup(name)
    return info.prompt(role) if info else ""


def _is_english(language: str) -> bool:
    return language.lower().split("-")[0] in ("en", "")


def default_encoder(language: str) -> str:
    """The bi-encoder an index of ``language`` (``en``, ``zh``, ...) gets when no model is given.

    Example::

        default_encoder("zh") == "intfloat/multilingual-e5-small"
    """
    return ENGLISH_ENCODER if _is_english(language) else MULTILINGUAL_ENCODER


def default_reranker(language: str) -> str:
    """The reranker for ``language`` when none is given. The multilingual one needs the hub
    (or a mirror): when it cannot be loaded, search keeps the retrieval order, as it does for
    the English default."""
    return ENGLISH_RERANKER if _is_english(language) else MULTILINGUAL_RERANKER
