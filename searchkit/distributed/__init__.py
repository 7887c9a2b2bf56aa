"""Corpora that outgrow one machine: Ray ingest into a sharded index, and the sharded
first stage (shards searched in threads or by Ray actors).

May import: ``searchkit.query``, ``searchkit.ingest`` and below. Ray is imported only by
``cluster``, ``ingest`` and ``tasks``.
"""

from __future__ import annotations
