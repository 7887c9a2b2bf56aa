"""Reading indexes: the ``Searcher``, its first stages (the protocol and the plain-index
implementation), fusion and metadata filters.

May import: ``searchkit.index``, ``searchkit.inference``, ``searchkit.backends`` and below.
"""

from __future__ import annotations
