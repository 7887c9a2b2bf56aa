"""Metadata filters: the language of ``searchkit query --where`` and of ``where=`` in Python.

As text::

    year >= 2020 and source = "pubmed"
    (lang in ("en", "de") or score > 0.5) and not draft = true
    author.name = 'Ada' and id not in ("d1", "d2") and `odd name!` != null

* ``field = value`` (or ``==``), ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``field in (v1, v2, ...)``,
  ``field not in (...)``; ``not`` binds tighter than ``and``, ``and`` tighter than ``or``;
  parentheses group; keywords (``and or not in true false null``) are case-insensitive (a field
  named like one goes in backquotes).
* values: numbers (``3``, ``-2.5``, ``1e-3``), strings in double or single quotes with backslash
  escapes (``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\uXXXX``), ``true``, ``false``, ``null``.
* fields: letters, digits, ``_``, ``.``, ``-``, starting with a letter or ``_``; other names go in
  backquotes. Nested metadata is flattened with dots (``{"a": {"b": 1}}`` is ``a.b``; a key
  ``"a.b"`` wins over it). ``id`` is the document id, which hides a metadata key named ``id``.

As a dict (Python API), keys are ANDed: ``{"source": "pubmed"}`` (equality), ``{"lang": ["en",
"de"]}`` (in), ``{"year": {">=": 2020, "<": 2024}}`` (operators ``= == != < <= > >= in``,
``not in``), ``{"draft": None}`` (is null).

Missing values: ``field = null`` matches documents without the field, ``field != null`` those
with it. Any other comparison with a missing value is unknown and a document matches only when the
whole filter is true (as in SQL): ``x != 1``, ``x not in (1, 2)`` and ``not x = 1`` all skip
documents without ``x``; write ``x = null or x != 1`` to keep them.

Types: a column is bool, int64, float64 (ints and floats mixed) or string, as its values are. A
column mixing kinds (strings and numbers, say) or holding lists is a string column of the JSON text
(``json.dumps``) of each non-string value, and compares as text: ``tags = '["a", "b"]'``. Numbers
compare with numbers (int with float too), strings with strings, bools with ``= != in`` only;
anything else is a FilterError at compile time. A field that is missing everywhere (type null)
takes any value and matches only ``= null``.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from searchkit.errors import FilterError
from searchkit.index.fields import json_text as _json

Where = str | Mapping[str, Any]

EXAMPLE = 'year >= 2020 and source = "pubmed"'
_OPS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
        "<=": operator.le, ">": operator.gt, ">=": operator.ge}  # fmt: skip
_ROW = "\0row"
_CATEGORIES = (("null", pa.types.is_null), ("bool", pa.types.is_boolean),
               ("number", pa.types.is_integer), ("number", pa.types.is_floating),
               ("string", pa.types.is_string), ("string", pa.types.is_large_string))  # fmt: skip
_HINTS = {"number": "compare it with a number, e.g. 2020", "string": "put the value in quotes",
          "bool": "compare it with true or false"}  # fmt: skip


@functools.cache
def _unknown() -> pc.Expression:
    """The null of three-valued logic (made on first use: pc.scalar imports pandas, ~1 s)."""
    return pc.scalar(pa.scalar(None, pa.bool_()))


@dataclass(frozen=True, eq=False)
class Filter:
    """A compiled filter: its pyarrow expression and the fields it reads, with their types."""

    expression: pc.Expression
    fields: Mapping[str, pa.DataType]


def compile_filter(where: Where, fields: Mapping[str, pa.DataType] | pa.Schema) -> Filter:
    """Parse and check a filter against the known fields (union of schemas over segments).

    ``fields`` maps names to types (or is a pyarrow schema); the result is a Filter for matching.
    """
    known = {f.name: f.type for f in fields} if isinstance(fields, pa.Schema) else dict(fields)
    used: dict[str, pa.DataType] = {}
    if isinstance(where, str) and where.strip():
        return Filter(_Parser(where, known, used).expression(), used)
    if isinstance(where, Mapping) and where:
        return Filter(_from_dict(where, known, used), used)
    if isinstance(where, (str, Mapping)):
        raise FilterError(f"empty filter; e.g. {EXAMPLE}")
    raise FilterError(f"a filter is a string or a dict, not {type(where).__name__}")


def _field_type(name: str, known: Mapping[str, pa.DataType], used: dict) -> pa.DataType:
    """The type of a known field (noting it as used); a FilterError listing the fields if not."""
    if name in known:
        used[name] = known[name]
        return known[name]
    names = sorted(known)
    listed = ", ".join(names[:50]) + (", ..." if len(names) > 50 else "") or "(none)"
    nested = [known_name for known_name in names if known_name.startswith(f"{name}.")]
    close = nested[:1] or difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FilterError(f"unknown field {name!r} in filter; this index's fields are: {listed}{hint}")


def _category(typ: pa.DataType) -> str:
    return next((category for category, test in _CATEGORIES if test(typ)), "other")


def _check(name: str, typ: pa.DataType, value: Any, op: str) -> None:
    """A FilterError unless ``name op value`` compares like with like."""
    category = _category(typ)
    kind = {bool: "bool", int: "number", float: "number", str: "string"}[type(value)]
    if category == "bool" and op in ("<", "<=", ">", ">="):
        raise FilterError(
            f"type mismatch in filter: field {name!r} has type bool, which has no order "
            f"({op} {_json(value)}); use = or != with true or false"
        )
    if category not in ("null", kind):
        hint = _HINTS.get(category, "filters cannot compare fields of this type")
        raise FilterError(f"type mismatch in filter: field {name!r} has type {typ} but "
                          f"{_json(value)} is a {kind}; {hint}")  # fmt: skip


def _compare(name: str, typ: pa.DataType, op: str, value: Any) -> pc.Expression:
    if value is None and op in ("=", "==", "!="):
        return pc.field(name).is_valid() if op == "!=" else pc.field(name).is_null()
    if value is None:
        raise FilterError(f"cannot use {op!r} with null (field {name!r}); use = null or != null")
    _check(name, typ, value, op)
    return _OPS[op](pc.field(name), value)


def _isin(name: str, typ: pa.DataType, values: Sequence[Any], negate: bool) -> pc.Expression:
    """``in``: unknown where the field is missing, unless null is one of the values."""
    present = [value for value in values if value is not None]
    for value in present:
        _check(name, typ, value, "in")
    column, category = pc.field(name), _category(typ)
    if category == "number" and (pa.types.is_floating(typ) or float in map(type, present)):
        # adding 0.0 makes -0.0 into 0.0, which is_in would tell apart
        found = pc.add(column, 0.0).isin(pa.array([v + 0.0 for v in present], pa.float64()))
    elif category in ("number", "bool", "string"):
        found = column.isin(pa.array(present, pa.int64() if category == "number" else typ))
    else:  # a null field, or one of another type and no values (else _check raised)
        found = pc.scalar(False)
    expression = pc.if_else(column.is_valid(), found, _unknown())
    if len(present) < len(values):
        expression = expression | column.is_null()
    return ~expression if negate else expression


def _literal(value: Any) -> Any:
    """A filter value as a plain Python scalar; ints beyond int64 become floats."""
    value = value.item() if isinstance(value, np.generic) else value
    if value is not None and type(value) not in (bool, int, float, str):
        raise FilterError(f"cannot filter on {value!r}: use strings, numbers, booleans or None")
    if type(value) is int and not -(2**63) <= value < 2**63:
        try:
            return float(value)
        except OverflowError:
            raise FilterError(f"number out of range in filter: {value}") from None
    return value


def _from_dict(where: Mapping[str, Any], known: Mapping[str, pa.DataType], used: dict):
    """The dict form: ``{field: value | [values] | {op: value}}``, ANDed."""
    parts = []
    for name, condition in where.items():
        typ = _field_type(str(name), known, used)
        if isinstance(condition, Mapping):
            pairs = [(" ".join(str(op).lower().split()), value) for op, value in condition.items()]
        else:
            pairs = [("in" if isinstance(condition, (list, tuple, set)) else "=", condition)]
        if not pairs:
            raise FilterError(f"empty condition for field {name!r} in filter")
        for op, value in pairs:
            if op in _OPS:
                parts.append(_compare(str(name), typ, op, _literal(value)))
            elif op in ("in", "not in") and isinstance(value, (list, tuple, set)):
                parts.append(_isin(str(name), typ, [*map(_literal, value)], op == "not in"))
            else:
                raise FilterError(f"bad condition {op!r}: {value!r} for field {name!r}; use "
                                  "=, ==, !=, <, <=, >, >= with a value or in, not in with a "
                                  "list (nested fields are written with dots: 'a.b')")  # fmt: skip
    return functools.reduce(operator.and_, parts)


_TOKEN = re.compile(
    r"""(?P<space>\s+) | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') | (?P<quoted>`[^`]+`)
      | (?P<op>==|!=|<=|>=|=|<|>|\(|\)|,) | (?P<word>[^\W\d][\w.\-]*)""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


class _Token(NamedTuple):
    kind: str  # number, string, quoted, word, end, a keyword, or the operator itself
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if not (match := _TOKEN.match(text, pos)):
            what = "unterminated quote" if text[pos] in "\"'`" else "unexpected character"
            raise FilterError(f"invalid filter {text!r}: {what} {text[pos]!r} at character "
                              f"{pos + 1}; e.g. {EXAMPLE}")  # fmt: skip
        kind, word = match.lastgroup or "", match.group()
        kind = word.lower() if kind == "word" and word.lower() in _KEYWORDS else kind
        if kind != "space":
            tokens.append(_Token(word if kind == "op" else kind, word, pos))
        pos = match.end()
    return [*tokens, _Token("end", "", len(text))]


def _unescape(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 5 else _ESCAPES.get(code, code)

    text = re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, body, flags=re.DOTALL)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")  # pairs


class _Parser:
    """Recursive descent: or := and ('or' and)*; and := not ('and' not)*; not := 'not' not |
    '(' or ')' | field op value | field ['not'] 'in' '(' [value (',' value)*] ')'."""

    def __init__(self, text: str, known: Mapping[str, pa.DataType], used: dict) -> None:
        self.text, self.known, self.used = text, known, used
        self.tokens, self.i = _tokens(text), 0

    def take(self, *kinds: str) -> _Token | None:
        token = self.tokens[self.i]
        if token.kind not in kinds:
            return None
        self.i += 1
        return token

    def fail(self, expected: str) -> NoReturn:
        token = self.tokens[self.i]
        at = f"character {token.pos + 1} ({token.text!r})" if token.text else "the end"
        raise FilterError(f"invalid filter {self.text!r}: expected {expected} at {at}; "
                          f"e.g. {EXAMPLE}")  # fmt: skip

    def expression(self) -> pc.Expression:
        expression = self.either()
        return expression if self.take("end") else self.fail("'and', 'or' or the end")

    def either(self) -> pc.Expression:
        expression = self.both()
        while self.take("or"):
            expression = expression | self.both()
        return expression

    def both(self) -> pc.Expression:
        expression = self.negation()
        while self.take("and"):
            expression = expression & self.negation()
        return expression

    def negation(self) -> pc.Expression:
        if self.take("not"):
            return ~self.negation()
        if self.take("("):
            expression = self.either()
            return expression if self.take(")") else self.fail("')'")
        return self.comparison()

    def comparison(self) -> pc.Expression:
        token = self.take("word", "quoted") or self.fail("a field name, 'not' or '('")
        name = token.text[1:-1] if token.kind == "quoted" else token.text
        typ = _field_type(name, self.known, self.used)
        if op := self.take(*_OPS):
            return _compare(name, typ, op.text, self.value())
        negate = self.take("not") is not None
        if not self.take("in"):
            self.fail("'in'" if negate else "an operator (=, !=, <, <=, >, >=, in, not in)")
        if not self.take("("):
            self.fail("'(' and a list of values")
        values = [] if self.take(")") else [self.value()]
        while values and not self.take(")"):
            values.append(self.value() if self.take(",") else self.fail("',' or ')'"))
        return _isin(name, typ, values, negate)

    def value(self) -> Any:
        token = self.tokens[self.i]
        if self.take("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.kind]
        if self.take("string"):
            return _unescape(token.text[1:-1])
        if self.take("number"):
            text = token.text
            return _literal(float(text) if any(c in text for c in ".eE") else int(text))
        self.fail("a value" + (' (quote strings: "text")' if token.kind == "word" else ""))


def matching(flt: Filter, table: pa.Table) -> np.ndarray:
    """Boolean mask (len == table.num_rows) of rows where the filter is true (null -> False).

    A field the filter reads that this table lacks (another segment has it) is missing in every
    row; a column of another type than the compiled one is cast to it (or missing if it can't).
    """
    rows = table.num_rows
    columns = {name: _conform(table, name, typ) for name, typ in flt.fields.items()}
    columns[_ROW] = pa.array(np.arange(rows, dtype=np.int64))
    kept = pa.table(columns).filter(flt.expression).column(_ROW).to_numpy()
    mask = np.zeros(rows, dtype=bool)
    mask[kept] = True
    return mask


def _conform(table: pa.Table, name: str, typ: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, typ)
    column = table.column(name)
    try:
        return column if column.type == typ else column.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(table.num_rows, typ)
