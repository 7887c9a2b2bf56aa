"""Fine-tune the models of an index on the user's relevance data (``searchkit train-*``).

* ``data``     relevance data: BEIR qrels or JSONL query/positive pairs; held-out split
* ``mining``   candidates and hard negatives from the user's own index
* ``reranker`` CrossEncoder training (CrossEncoderTrainer, listwise loss)
* ``embedder`` bi-encoder training (SentenceTransformerTrainer, MultipleNegativesRankingLoss)
  and re-embedding the index with the new model
"""

from __future__ import annotations
