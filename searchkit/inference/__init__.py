"""Models: the bi-encoder, the CrossEncoder reranker, the sparse encoder, model resolution
and the inference runtimes (torch, ONNX Runtime, OpenVINO).

May import: ``searchkit.index`` (its file helpers), ``searchkit.errors``, ``searchkit.models``.
"""

from __future__ import annotations
