"""The shape of the package: no import cycle, one Searcher over first stages that load no model."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp

import searchkit
from searchkit.query.searcher import Searcher


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycle_counting_imports_inside_functions():
    # grimp reads every import statement, those inside functions too
    graph = grimp.build_graph("searchkit", cache_dir=None)
    assert graph.find_modules_directly_imported_by("searchkit.distributed.fanout")  # it parsed
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_searcher_is_never_subclassed():
    root = Path(searchkit.__file__).parent
    for info in pkgutil.walk_packages([str(root)], "searchkit."):
        if info.name == "searchkit.__main__":
            continue  # running it is the CLI
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            assert cls is Searcher or not issubclass(cls, Searcher), f"{cls} subclasses Searcher"


def test_a_first_stage_searches_without_loading_a_model(built_index: Path):
    # a shard is a first stage: in a fresh process it answers query vectors with no torch,
    # transformers or sentence-transformers imported
    script = f"""
import sys
import numpy as np
from searchkit.options import SearchOptions
from searchkit.query.stage import QueryBatch, open_stage
stage = open_stage({str(built_index)!r})
query = np.random.default_rng(0).normal(size=(2, stage.manifest.dim)).astype("float32")
query /= np.linalg.norm(query, axis=1, keepdims=True)
found = stage.candidates(QueryBatch(query, None), 3, None, SearchOptions(), None)
assert [len(p) for p in found.pools] == [3, 3], found.pools
loaded = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print("loaded:", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: []"
