"""How the CLI shows searchkit errors and warnings."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from searchkit.errors import SearchkitError


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn searchkit errors into one line on stderr and exit code 1; show warnings plainly."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        except SearchkitError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        finally:
            for w in caught:
                typer.echo(f"warning: {w.message}", err=True)
