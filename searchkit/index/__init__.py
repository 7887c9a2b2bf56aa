"""The on-disk index format: manifest, segments, docstore, lexical postings, commits, lock.

Everything that reads or writes an index folder's files lives here; nothing here loads a model.
May import: ``searchkit.backends``, ``searchkit.errors``, ``searchkit.models``,
``searchkit.defaults``.
"""

from __future__ import annotations
