"""Writing indexes: corpus readers, chunking, ``build_index`` and the ``IndexWriter``.

May import: ``searchkit.index``, ``searchkit.inference``, ``searchkit.backends`` and below.
"""

from __future__ import annotations
