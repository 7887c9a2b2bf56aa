"""Shared fixtures: the real offline models, tiny corpora, and indexes built once per session."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Nothing in the tests may reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"
# Models exported for the onnx/openvino runtimes go to a cache of this run (subprocesses too).
if "SEARCHKIT_CACHE" not in os.environ:
    os.environ["SEARCHKIT_CACHE"] = tempfile.mkdtemp(prefix="searchkit-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SEARCHKIT_CACHE"], ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
RERANKER = Path(
    os.environ.get("SEARCHKIT_TEST_RERANKER", REPO.parent / "shared" / "models" / "reranker")
)

# Each document is about one topic; each query names exactly one of them.
DOCS = [
    (
        "vaccine",
        "Vaccines",
        "A vaccine trains the immune system to recognise a pathogen by exposing it to a harmless antigen, so antibodies are ready before a real infection.",
    ),
    (
        "photo",
        "Photosynthesis",
        "Plants turn sunlight, water and carbon dioxide into glucose and oxygen inside their chloroplasts.",
    ),
    (
        "blackhole",
        "Black holes",
        "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can escape its event horizon.",
    ),
    (
        "sourdough",
        "Sourdough bread",
        "Sourdough bread rises thanks to wild yeast and lactic acid bacteria living in a fermented flour starter.",
    ),
    (
        "volcano",
        "Volcanoes",
        "Volcanoes erupt when molten rock, called magma, rises through the crust and escapes as lava, ash and gas.",
    ),
    (
        "chess",
        "Chess openings",
        "In chess, the opening moves aim to control the centre of the board and develop knights and bishops quickly.",
    ),
    (
        "bitcoin",
        "Bitcoin",
        "Bitcoin is a decentralised digital currency whose transactions are recorded on a public blockchain by miners.",
    ),
    (
        "tides",
        "Ocean tides",
        "Tides are the regular rise and fall of sea level caused by the gravitational pull of the Moon and the Sun.",
    ),
    (
        "python",
        "Python lists",
        "A Python list is a mutable sequence; append adds an item to the end and sort orders the items in place.",
    ),
    (
        "coffee",
        "Coffee brewing",
        "Espresso is brewed by forcing hot water through finely ground coffee beans at high pressure.",
    ),
    (
        "marathon",
        "Marathon training",
        "Marathon runners build endurance with long slow runs, gradually increasing weekly mileage before race day.",
    ),
    (
        "insulin",
        "Insulin",
        "Insulin is a hormone made by the pancreas that lets cells absorb glucose from the blood; diabetes disturbs it.",
    ),
]
QUERIES = {
    "how do vaccines protect against disease": "vaccine",
    "why can't light escape from a black hole": "blackhole",
    "what makes sourdough rise": "sourdough",
    "what causes high and low tide": "tides",
    "hormone that controls blood sugar": "insulin",
}


def write_jsonl(path: Path, records: list[dict] | list[str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def tiny_records() -> list[dict]:
    return [
        {"_id": i, "title": t, "text": x, "topic": i, "year": 2000 + n}
        for n, (i, t, x) in enumerate(DOCS)
    ]


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tiny.jsonl", tiny_records())


@pytest.fixture(scope="session")
def reranker_path() -> Path:
    if not (RERANKER / "config.json").is_file():
        pytest.skip(f"test reranker not found at {RERANKER} (set SEARCHKIT_TEST_RERANKER)")
    return RERANKER


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, reranker_path: Path) -> Path:
    """A faiss flat index of the tiny corpus whose default reranker is the test reranker."""
    from searchkit import build_index

    root = tmp_path_factory.mktemp("built")
    corpus = write_jsonl(root / "tiny.jsonl", tiny_records())
    return build_index(corpus, root / "index", reranker=str(reranker_path), progress=False).path


def assert_same_hits(a: list, b: list, atol: float) -> None:
    """Lists of (id, score) hits per query: the same scores, and the same ids in the same order
    up to ties (scores within ``atol`` may come in any order; a tie cut by ``k`` at the end of
    a list may hold different ids)."""
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose([s for _, s in x], [s for _, s in y], atol=atol)
        tx, ty = _ties(x, atol), _ties(y, atol)
        assert len(tx) == len(ty) and tx[:-1] == ty[:-1]


def _ties(hits: list[tuple[str, float]], atol: float) -> list[set[str]]:
    """The ids of each run of equal scores, best first."""
    runs: list[tuple[float, set[str]]] = []
    for doc, score in hits:
        if runs and abs(runs[-1][0] - score) <= atol:
            runs[-1][1].add(doc)
        else:
            runs.append((score, {doc}))
    return [ids for _, ids in runs]
