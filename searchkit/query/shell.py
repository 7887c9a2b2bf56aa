"""The state and commands of ``searchkit shell``: lines in, searches or messages out (no I/O).

A line is a query, or a command starting with ``:``: ``:k 5``, ``:where year >= 2020``,
``:where`` (clear), ``:rerank on|off``, ``:mode dense``, any other ``SearchOptions`` field
(``:candidates 50``, ``:fusion rrf``, ``:ef_search default``), ``:show``, ``:help``, ``:quit``.
Example::

    shell = ShellSession()
    shell.handle(":k 3")          # Message("k = 3")
    shell.handle("how do vaccines work")  # Search("how do vaccines work", 3, None, options)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from searchkit.defaults import DEFAULT_K
from searchkit.errors import InvalidParameter
from searchkit.options import NAMES, SearchOptions

COMMANDS = {
    "k": "hits to return, e.g. :k 5",
    "where": "metadata filter, e.g. :where year >= 2020 (no text: no filter)",
    "rerank": "on or off",
    "mode": "dense, lexical or hybrid (default: the index's)",
    "show": "the current settings",
    "help": "this list",
    "quit": "leave (also :q, :exit, end of input)",
}
QUIT = ("quit", "q", "exit")
ON, OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
UNSET = ("default", "none")


@dataclass(frozen=True)
class Search:
    """Run this search."""

    query: str
    k: int
    where: str | None
    options: SearchOptions


@dataclass(frozen=True)
class Message:
    """Show this text (a setting changed, the help, ...)."""

    text: str


@dataclass(frozen=True)
class Quit:
    """Leave the shell."""


Reply = Search | Message | Quit | None


@dataclass
class ShellSession:
    """What the shell searches with: ``k``, ``where`` and the ``SearchOptions``."""

    k: int = DEFAULT_K
    where: str | None = None
    options: SearchOptions = field(default_factory=SearchOptions)

    def handle(self, line: str) -> Reply:
        """The reply to one input line (None for a blank line).

        Raises:
            InvalidParameter: an unknown command or a bad value (the session is unchanged).
        """
        line = line.strip()
        if not line:
            return None
        if not line.startswith(":"):
            return Search(line, self.k, self.where, self.options)
        name, _, value = line[1:].strip().partition(" ")
        name, value = name.lower().replace("-", "_"), value.strip()
        if name in QUIT:
            return Quit()
        if name == "help":
            return Message(help_text())
        if name == "show":
            return Message(self.describe())
        if name == "k":
            self.k = _number(name, value, int, low=1)
        elif name == "where":
            self.where = value or None
        elif name in NAMES:
            self.options = self.options.replace(**{name: _option_value(name, value)})
        else:
            raise InvalidParameter(f"unknown command :{name}; type :help for the commands")
        return Message(self.describe(name))

    def describe(self, name: str | None = None) -> str:
        """``name = value`` for one setting, or every setting (one per line)."""
        values = {"k": self.k, "where": self.where, **self.options.to_dict()}
        shown = [name] if name else list(values)
        return "\n".join(f"{n} = {_show(values[n])}" for n in shown)


def help_text() -> str:
    """The shell's commands, one per line."""
    lines = ["Type a query, or a command:"]
    lines += [f"  :{name:<8} {what}" for name, what in COMMANDS.items()]
    others = ", ".join(n for n in NAMES if n not in COMMANDS)
    lines.append(f"  :NAME VALUE for any other search option ({others}); VALUE default unsets")
    return "\n".join(lines)


def _option_value(name: str, value: str) -> Any:
    """``value`` as the type of ``SearchOptions`` field ``name`` (checked by SearchOptions)."""
    f = next(f for f in dataclasses.fields(SearchOptions) if f.name == name)
    if not value:
        raise InvalidParameter(f":{name} needs a value; type :help", param=name)
    if value.lower() in UNSET and f.default is None:
        return None
    default = f.default
    if isinstance(default, bool):
        if value.lower() not in ON + OFF:
            raise InvalidParameter(f":{name} takes on or off, not {value!r}", param=name)
        return value.lower() in ON
    if name in ("mode", "fusion"):
        return value.lower()
    kind = float if isinstance(default, float) else int
    return _number(name, value, kind)


def _number(name: str, value: str, kind: type, low: float | None = None) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise InvalidParameter(
            f":{name} takes a{'n integer' if kind is int else ' number'}, not {value!r}",
            param=name,
        ) from None
    if low is not None and number < low:
        raise InvalidParameter(f":{name} must be at least {low}, not {value}", param=name)
    return number


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "default" if value is None else str(value)
