"""The flags that say how to read a corpus (``index`` and ``add``), and the source they open."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

CorpusArg = Annotated[
    Path,
    typer.Argument(
        help="Corpus: a JSONL, JSON, Parquet, CSV or TSV file, a datasets folder "
        "(save_to_disk) or a folder of .txt, .md, .html, .pdf and table files."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Corpus format: jsonl, json, parquet, csv, tsv, hf or folder "
        "(default: from the file name; a folder: hf if saved by datasets, else folder).",
    ),
]
TextFieldOpt = Annotated[str | None, typer.Option(help="Text column (default: text).")]
TitleFieldOpt = Annotated[str | None, typer.Option(help="Title column (default: title).")]
FieldsOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated columns kept as metadata (default: all the others)."),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="A folder's files to read, a glob on the relative path (* crosses folders); "
        "repeatable (default: text, Markdown, HTML, PDF, CSV and TSV files)."
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(help="A folder's files to leave out, e.g. 'drafts/*'; repeatable."),
]


def corpus_options(
    format: str | None,
    text_field: str | None,
    title_field: str | None,
    fields: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
) -> dict[str, Any]:
    """The ``read_corpus`` keyword arguments of the flags that were given."""
    given = {
        "format": format, "text_field": text_field, "title_field": title_field,
        "fields": [f.strip() for f in fields.split(",") if f.strip()] if fields else None,
        "include": include or None, "exclude": exclude or None,
    }  # fmt: skip
    return {k: v for k, v in given.items() if v is not None}
