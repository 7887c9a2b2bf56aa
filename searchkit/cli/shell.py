"""The terminal side of ``searchkit shell``: read lines (readline history when interactive),
hand them to ``searchkit.query.shell.ShellSession``, print hits as ``searchkit query`` does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from searchkit.errors import SearchkitError
from searchkit.inference.runtimes.cache import cache_root
from searchkit.query.shell import Message, Quit, Search, ShellSession
from searchkit.report import print_hits

if TYPE_CHECKING:
    from searchkit.query.searcher import Searcher

HISTORY_LINES = 1000


def history_path() -> Path:
    """The shell's history file, beside searchkit's model cache (``~/.cache/searchkit``)."""
    return cache_root().parent / "shell_history"


def run_shell(index: Path, searcher: Searcher, as_json: bool = False) -> None:
    """Answer lines from stdin until ``:quit`` or end of input; errors are shown, not fatal."""
    interactive = sys.stdin.isatty()
    if interactive:
        _start_history()
        typer.echo(f"searchkit shell on {index} ({len(searcher):,} documents); :help, :quit")
    session = ShellSession()
    while True:
        try:
            line = input("searchkit> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive and not line:  # end of piped input
            break
        try:
            reply = session.handle(line)
            if isinstance(reply, Quit):
                break
            if isinstance(reply, Message):
                typer.echo(reply.text)
            elif isinstance(reply, Search):
                hits = searcher.search(
                    reply.query, reply.k, where=reply.where, options=reply.options
                )
                print_hits(index, hits, searcher.reranker.name, as_json=as_json)
        except SearchkitError as err:
            typer.echo(f"error: {err}", err=True)
    if interactive:
        _save_history()


def _start_history() -> None:
    try:
        import readline
    except ImportError:  # no readline on this Python (Windows): plain input()
        return
    readline.set_history_length(HISTORY_LINES)
    try:
        readline.read_history_file(history_path())
    except OSError:  # no history yet
        pass


def _save_history() -> None:
    try:
        import readline
    except ImportError:
        return
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError as err:
        typer.echo(f"warning: shell history not saved to {path}: {err}", err=True)
