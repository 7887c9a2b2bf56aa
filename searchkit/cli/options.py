"""The CLI's shared flags, and the flags of every ``SearchOptions`` field."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from searchkit.cli.errors import reported_errors
from searchkit.options import SearchOptions

IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        "-i",
        help="Index folder (default: $SEARCHKIT_INDEX, else newest under ./indexes).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
EfSearchOpt = Annotated[int | None, typer.Option(help="HNSW search breadth (hnsw indexes).")]
NprobeOpt = Annotated[int | None, typer.Option(help="IVF lists to visit per query (ivf indexes).")]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        help="Bi-encoder runtime: torch, onnx, openvino, or with a precision "
        "(openvino-int8) (default: auto, the fastest installed that keeps quality).",
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(help="Bi-encoder precision: fp32, bf16 or int8 (default: the runtime's)."),
]
QueryRuntimeOpt = Annotated[
    str | None,
    typer.Option(
        help="Query encoder runtime, e.g. torch-fp32 (default: the index's; others warn)."
    ),
]
RerankerRuntimeOpt = Annotated[
    str | None,
    typer.Option(help="Reranker runtime, e.g. openvino-int8 or torch-bf16 (default: auto)."),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        help="First stage: dense, lexical or hybrid "
        "(default: hybrid when the index has lexical data)."
    ),
]
LexicalOpt = Annotated[
    str, typer.Option(help="Lexical first stage stored in the index: bm25, splade or none.")
]
SpladeOpt = Annotated[str, typer.Option(help="SparseEncoder for --lexical splade.")]
RerankTokensOpt = Annotated[
    int | None,
    typer.Option(help="Cap on the tokens of a pair the reranker reads (default: the model's own)."),
]
RescoreOpt = Annotated[
    int | None,
    typer.Option(help="Candidates rescored with float vectors (sq8, binary kinds; 0: off)."),
]


WhereOpt = Annotated[
    str | None,
    typer.Option(
        help="Metadata filter, e.g. 'year >= 2020 and source = \"pubmed\"' "
        "(see searchkit.query.filters)."
    ),
]
_SHORT_FLAGS = {"candidates": ["--candidates", "-c"]}


def with_search_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` a flag per ``SearchOptions`` field (its default and help text); the
    command gets them as one ``options`` argument, checked by ``SearchOptions`` itself."""
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "options"]
    added = []
    for f in dataclasses.fields(SearchOptions):
        kind = {"bool": bool, "int": int, "float": float, "str": str}[str(f.type).split(" |")[0]]
        flag = typer.Option(*_SHORT_FLAGS.get(f.name, ()), help=f.metadata["help"])
        annotation = Annotated[kind | None if f.default is None else kind, flag]
        added.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                       default=f.default, annotation=annotation))  # fmt: skip

    @functools.wraps(command)
    def run(**given: Any) -> None:
        chosen = {f.name: given.pop(f.name) for f in dataclasses.fields(SearchOptions)}
        with reported_errors():
            options = SearchOptions(**chosen)
        command(**given, options=options)

    run.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
    return run


IndexArg = Annotated[Path, typer.Argument(help="Index folder.")]

DatasetOpt = Annotated[Path | None, typer.Option(help="BEIR dataset folder of relevance data.")]
TrainSplitOpt = Annotated[str, typer.Option(help="qrels split of --dataset to train on.")]
EvalSplitOpt = Annotated[
    str | None, typer.Option(help="qrels split of --dataset to evaluate on [--heldout instead].")
]
PairsOpt = Annotated[
    Path | None, typer.Option(help="JSONL of {query, positive | positive_id} lines.")
]
HeldoutOpt = Annotated[
    float, typer.Option(help="Share of training queries kept out to measure before/after.")
]
NegativesOpt = Annotated[int, typer.Option(help="Hard negatives per (query, positive).")]
DepthOpt = Annotated[int, typer.Option(help="Hard negatives are sampled from this top-N.")]
EpochsOpt = Annotated[float, typer.Option(help="Passes over the training rows.")]
MaxLengthOpt = Annotated[int, typer.Option(help="Tokens per input the model reads in training.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")]
EncodingOpt = Annotated[
    str, typer.Option(help="Text encoding of the input files, e.g. gb18030 or big5.")
]
