"""The HTTP API (FastAPI): request schemas, the service that owns the searcher and writer,
micro-batching.

May import: ``searchkit.query``, ``searchkit.ingest`` and below.
"""

from __future__ import annotations
