"""Retrieval evaluation: BEIR data sets, metrics (trec_eval), ``evaluate``.

May import: ``searchkit.query``, ``searchkit.ingest`` and below.
"""

from __future__ import annotations
