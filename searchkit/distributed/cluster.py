"""Ray connection, and the Ray actors that search shards (``searchkit.distributed.fanout``).

``ray_session`` joins a cluster for the length of a block, or uses the connection this process
already has. ``RayShards`` opens each shard of an index in a Ray actor and asks them all in
parallel; the query is embedded and reranked by the caller, once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchkit.errors import InvalidParameter, SearchkitError
from searchkit.index.lexical import Terms, TermStats
from searchkit.models import Document, Passage
from searchkit.options import SearchOptions
from searchkit.query.filters import Filter
from searchkit.query.plain import PlainIndex
from searchkit.query.stage import QueryBatch, Ranked

try:
    import ray
    import ray.data
except ImportError:  # pragma: no cover - the ray extra is optional
    raise SearchkitError(
        "this needs Ray: pip install 'searchkit[ray]' (or pip install 'ray[data]')"
    ) from None

# the driver's model settings, handed to the workers of a cluster this process starts or joins
PASS_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "SENTENCE_TRANSFORMERS_HOME")


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connected to Ray for the block: joins ``address`` unless this process already is, and
    disconnects (stopping a ``local`` instance) only if it connected."""
    if ray.is_initialized():
        yield
        return
    env = {name: os.environ[name] for name in PASS_ENV if name in os.environ}
    try:
        ray.init(
            address=address,
            log_to_driver=False,  # workers' output must not reach our stdout (--json)
            logging_level=logging.WARNING,
            runtime_env={"env_vars": env} if env else None,
        )
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise InvalidParameter(
            f"cannot connect to the Ray cluster at {address!r} ({last_line(err)}); start one "
            'with: ray start --head, or pass address="local"',
            param="address",
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def last_line(err: BaseException) -> str:
    """The last line of a (Ray) error: the original exception, without Ray's traceback."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


class _ShardServer:
    """Query actor: one shard, opened on the node that runs the actor (it loads no model)."""

    def __init__(self, path: str, verify: bool) -> None:
        self.shard = PlainIndex(path, verify=verify)

    def fields(self) -> dict[str, pa.DataType]:
        return self.shard.fields()

    def ids(self) -> list[str]:
        return self.shard.ids()

    def term_stats(self, terms: Sequence[Terms]) -> list[TermStats]:
        return self.shard.term_stats(terms)

    def ranked(
        self,
        batch: QueryBatch,
        depth: int,
        flt: Filter | None,
        options: SearchOptions,
        stats: list[TermStats] | None,
    ) -> Ranked:
        return self.shard.ranked(batch, depth, flt, options, stats)

    def documents(
        self, refs: np.ndarray, best: list[dict[int, int]], vectors: np.ndarray | None
    ) -> tuple[dict[int, Document], list[dict[int, Passage]]]:
        return self.shard.documents(refs, best, vectors)


class RayShards:
    """The shards of an index searched by Ray actors, one per shard (a ``fanout.Shards``)."""

    def __init__(self, paths: Sequence[Path], verify: bool, address: str) -> None:
        self._session = ray_session(address)
        self._session.__enter__()
        # searching a shard is light next to embedding: the actors take no CPU reservation
        server = ray.remote(num_cpus=0)(_ShardServer)
        self.actors = [server.remote(str(p), verify) for p in paths]

    def _all(self, method: str, *args: Any) -> list[Any]:
        return self._get([getattr(a, method).remote(*args) for a in self.actors])

    def _get(self, refs: list[Any]) -> list[Any]:
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as err:
            raise SearchkitError(f"searching the shards failed: {last_line(err)}") from None

    def fields(self) -> list[dict[str, pa.DataType]]:
        return self._all("fields")

    def ids(self) -> list[list[str]]:
        return self._all("ids")

    def term_stats(self, terms: Sequence[Terms]) -> list[list[TermStats]]:
        return self._all("term_stats", terms)

    def ranked(
        self,
        batch: QueryBatch,
        depth: int,
        flt: Filter | None,
        options: SearchOptions,
        stats: list[TermStats] | None,
    ) -> list[Ranked]:
        return self._all("ranked", batch, depth, flt, options, stats)

    def documents(
        self, wanted: Sequence[tuple[np.ndarray, list[dict[int, int]]] | None], vectors: Any
    ) -> list[Any]:
        """Only the actors of the shards that have hits are asked."""
        refs = {
            s: self.actors[s].documents.remote(*want, vectors)
            for s, want in enumerate(wanted)
            if want is not None
        }
        found = dict(zip(refs, self._get(list(refs.values())), strict=True))
        return [found.get(s) for s in range(len(self.actors))]

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._session.__exit__(None, None, None)
