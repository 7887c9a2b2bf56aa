"""How the CLI shows searchkit errors and warnings, with Python parameters spelled as flags."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer

from searchkit.errors import SearchkitError

try:  # typer >= 0.26 runs its commands on its own copy of click
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer runs them on click
    from click import get_current_context

# library parameters the CLI calls otherwise
ALIASES = {"address": "ray", "ray_address": "ray"}
# name=value as library messages write a parameter: chunk_tokens=512, force=True, mode="dense"
_SPELLED = re.compile(
    r"(?<![\w.\-'\"])(?P<name>[a-z][a-z0-9_]*)=(?!=)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;()]*[^\s,;().])?"
)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn searchkit errors into one line on stderr and exit code 1; show warnings plainly."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        except SearchkitError as err:
            ctx = get_current_context(silent=True)
            params = ctx.command.params if ctx is not None else []
            message = as_flags(str(err), getattr(err, "param", None), params)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None
        finally:
            for w in caught:
                typer.echo(f"warning: {w.message}", err=True)


def as_flags(message: str, param: str | None, params: Sequence[Any]) -> str:
    """``message`` with the Python parameters it spells (``chunk_tokens=512``, ``force=True``)
    written as the flags of the command's click ``params`` (``--chunk-tokens 512``, ``--force``);
    ``param``, the one the error is about, is named at the end when its flag is not shown."""
    by_name = {p.name: p for p in params}

    def find(name: str) -> Any:
        return by_name.get(ALIASES.get(name, name))

    def flag(p: Any) -> str:
        return p.name.upper() if p.param_type_name == "argument" else max(p.opts, key=len)

    def spell(match: re.Match[str]) -> str:
        p, value = find(match["name"]), match["value"]
        if p is None:
            return match[0]
        if getattr(p, "is_flag", False) and value in ("True", "False"):
            if value == "True":
                return flag(p)
            return p.secondary_opts[0] if p.secondary_opts else match[0]
        if value and value[0] in "'\"" and not re.search(r"\s", value):
            value = value[1:-1]
        return f"{flag(p)} {value}" if value else flag(p)

    message = _SPELLED.sub(spell, message)
    p = find(param) if param else None
    shown = [flag(p), *p.secondary_opts] if p is not None else []
    if shown and not any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", message) for f in shown):
        message += f" ({p.param_type_name} {flag(p)})"
    return message
