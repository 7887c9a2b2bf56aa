"""Search defaults shared by the library and the CLI (a light module: the CLI imports it early)."""

from __future__ import annotations

DEFAULT_K = 10
# Measured on SciFact (searchkit eval, 2 CPU cores): reranking the top 20 instead of the top 50
# kept nDCG@10 (see benchmarks/README.md) at 2.4x less latency (1.3 s against 3.1 s per query).
DEFAULT_CANDIDATES = 20
