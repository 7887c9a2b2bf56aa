"""The vector-index protocol every backend implements, and shared parameter handling."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from searchkit.errors import InvalidParameter, UnknownBackend

# Parameters that may change per query; all others are fixed when the index is built.
SEARCH_PARAMS = frozenset({"ef_search", "nprobe", "rescore"})
# Parameters for which 0 means off (rescore=0: a compact index's own scores, not rescored)
MAY_BE_ZERO = frozenset({"rescore"})
AUTO = None  # a default worked out from the document count (nlist)


class VectorIndex(Protocol):
    """Vectors addressed by row: id i is row i of the docstore. Scores are similarities.

    ``search`` returns (nq, k) arrays of scores and ids, padded with -inf / -1 when fewer than
    k vectors qualify. ``allow`` (a boolean mask over rows) restricts the search to those rows,
    through the library's own filter (FAISS ``IDSelector``, hnswlib ``filter``); approximate
    indexes may then return fewer than k. ``params`` holds every build and search parameter.
    """

    KINDS: ClassVar[dict[str, dict[str, Any]]]
    # kinds that are exact scans of the float vectors a segment stores anyway (vectors.f32):
    # no copy of them is built or saved, the segment searches them through ``ExactIndex.over``
    FLOAT_VIEWS: ClassVar[frozenset[str]]
    SUFFIX: ClassVar[str]
    kind: str
    params: dict[str, Any]

    @classmethod
    def create(cls, dim: int, kind: str, params: dict[str, Any], count: int) -> VectorIndex: ...
    @classmethod
    def load(cls, path: Path, dim: int, kind: str, params: dict[str, Any]) -> VectorIndex: ...
    def train(self, sample: np.ndarray) -> None: ...
    def add(self, vectors: np.ndarray) -> None: ...
    def search(
        self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def save(self, path: Path) -> None: ...
    def __len__(self) -> int: ...


def resolve_params(
    backend: str, kinds: dict[str, dict[str, Any]], kind: str, given: dict[str, Any], count: int
) -> dict[str, Any]:
    """Defaults of ``kind`` overlaid with ``given`` (None means default), checked.

    ``nlist`` left automatic becomes about 4*sqrt(count), capped so that every list has at
    least 39 training points (FAISS warns below that).
    """
    if kind not in kinds:
        raise UnknownBackend(
            f"backend {backend!r} has no kind {kind!r}; choose one of: {', '.join(kinds)}"
        )
    defaults = kinds[kind]
    given = {key: value for key, value in given.items() if value is not None}
    if unknown := sorted(set(given) - set(defaults)):
        takes = ", ".join(defaults) or "no parameters"
        raise InvalidParameter(
            f"{backend} {kind} does not take {', '.join(unknown)}; it takes: {takes}"
        )
    params = {**defaults, **given}
    if "nlist" in params and params["nlist"] is AUTO:
        params["nlist"] = max(1, min(int(4 * math.sqrt(count)), count // 39))
    for key, value in params.items():
        _check_positive(key, value)
    return params


def search_params(index: VectorIndex, k: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The index's search parameters with per-query ``overrides`` applied and checked."""
    if k < 1:
        raise InvalidParameter(f"k must be at least 1, got {k}")
    params = dict(index.params)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in SEARCH_PARAMS or key not in params:
            kind = f"{type(index).__name__} {index.kind}"
            allowed = ", ".join(sorted(SEARCH_PARAMS & set(params))) or "none"
            raise InvalidParameter(
                f"{key} does not apply to a {kind} index (query-time options: {allowed})"
            )
        _check_positive(key, value)
        params[key] = value
    return params


def pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (nq, j) results to (nq, k) with -inf / -1, and mark missing ids' scores -inf."""
    scores = np.asarray(scores, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape[1] < k:
        extra = k - ids.shape[1]
        scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=-1)
    scores[ids < 0] = -np.inf
    return scores, ids


def _check_positive(key: str, value: Any) -> None:
    least = 0 if key in MAY_BE_ZERO else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a whole number >= 0" if least == 0 else "a positive whole number"
        raise InvalidParameter(f"{key} must be {what}, got {value!r}")
