"""Every CLI command has help text and is shown in the README."""

from __future__ import annotations

from pathlib import Path

import typer.main

from searchkit.cli import app
from searchkit.defaults import DEFAULT_CANDIDATES, DEFAULT_K

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_command_has_help_and_appears_in_readme():
    commands = typer.main.get_command(app).commands
    assert set(commands) >= {"index", "query", "info"}
    for name, command in commands.items():
        assert command.help, f"searchkit {name} has no help text"
        assert f"searchkit {name}" in README, f"README.md does not show searchkit {name}"


def test_readme_gives_the_two_setup_commands():
    assert "make demo" in README and "make test" in README


def test_cli_defaults_are_the_library_defaults():
    commands = typer.main.get_command(app).commands
    for name in ("query", "eval"):
        params = {p.name: p.default for p in commands[name].params}
        assert params["candidates"] == DEFAULT_CANDIDATES, name
    assert {p.name: p.default for p in commands["query"].params}["k"] == DEFAULT_K
