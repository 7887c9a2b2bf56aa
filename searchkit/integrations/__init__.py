"""Adapters for RAG frameworks: a LangChain retriever and vector store, a LlamaIndex retriever.

Each module imports its framework on first use and says which extra to install when it is
missing (``pip install 'searchkit[langchain]'``, ``'searchkit[llamaindex]'``).

May import: ``searchkit.query``, ``searchkit.ingest`` and below; nothing imports this package.
"""

from __future__ import annotations
