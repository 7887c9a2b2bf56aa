"""The typed metadata columns of a segment (``fields.parquet``), which filters run on.

A column is bool, int64, float64 (ints and floats mixed) or string, as its values are; a column
mixing kinds or holding lists holds the JSON text of each non-string value (see
``searchkit.query.filters`` for how they compare). Nested dicts become dotted columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

_KINDS = (({bool}, pa.bool_()), ({int}, pa.int64()), ({int, float}, pa.float64()),
          ({str}, pa.string()))  # fmt: skip


def fields_table(metadata: Sequence[dict[str, Any]], ids: Sequence[str]) -> pa.Table:
    """Typed columns, one row per document (same order), for filtering."""
    if len(metadata) != len(ids):
        raise ValueError(f"{len(metadata)} metadata dicts for {len(ids)} ids")
    rows = [meta or {} for meta in metadata]
    columns: dict[str, pa.Array] = {}
    for name in sorted({name for row in rows for name in row}, key=str):
        _add_columns(str(name), [row.get(name) for row in rows], columns)
    columns.pop("id", None)
    ids_column = pa.array([str(i) for i in ids], pa.string())
    return pa.table({"id": ids_column, **dict(sorted(columns.items()))})


def _add_columns(name: str, values: list[Any], columns: dict[str, pa.Array]) -> None:
    """Adds column ``name``, and its nested dicts' values as columns ``name.key`` (column-wise)."""
    if dict in map(type, values):
        for key in sorted({key for v in values if type(v) is dict for key in v}, key=str):
            inner = [v.get(key) if type(v) is dict else None for v in values]
            _add_columns(f"{name}.{key}", inner, columns)
        values = [None if type(v) is dict and v else v for v in values]
        if values.count(None) == len(values):  # a column of nested fields only
            return
    columns[name] = _column(values)


def _column(values: list[Any]) -> pa.Array:
    """One column, typed over all its values (see the module docstring)."""
    kinds = {type(value) for value in values} - {type(None)}
    if not kinds:
        return pa.nulls(len(values))
    for allowed, typ in _KINDS:
        if kinds <= allowed:
            try:  # pyarrow refuses ints beyond int64, or beyond 2**53 as float64: convert them
                floats = typ == pa.float64() and int in kinds
                return pa.array([v if v is None else float(v) for v in values] if floats
                                else values, typ)  # fmt: skip
            except (OverflowError, pa.ArrowInvalid):
                continue
    return pa.array(
        [v if v is None or type(v) is str else json_text(v) for v in values], pa.string()
    )


# json.dumps with options is slow
json_text = json.JSONEncoder(ensure_ascii=False, default=str).encode
