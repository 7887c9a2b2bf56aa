"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

- ``<!-- searchkit:cli -->`` in a page becomes the reference of every ``searchkit`` command,
  read from the typer app (usage, help, every argument and option with its help and default).
- ``<!-- searchkit:modules -->`` becomes the map of the package: one row per subpackage and
  module with the first line of its docstring (read with ``ast``, nothing is imported).

``tests/test_docs.py`` imports this file to check both against the code.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "searchkit"
CLI_MARKER = "<!-- searchkit:cli -->"
MODULES_MARKER = "<!-- searchkit:modules -->"


def commands() -> dict[str, Any]:
    """The click commands of ``searchkit``, by name, in the order the CLI lists them."""
    import typer.main

    from searchkit.cli import app

    return dict(typer.main.get_command(app).commands)


def _cell(text: str) -> str:
    """One table cell of plain text: one line, ``|`` escaped, ``<name>`` kept as text."""
    text = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")


def _default(param: Any) -> str:
    default = param.default
    if param.required or default is None or callable(default):
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if getattr(param, "is_flag", False):
        return "" if not default else "on"
    if isinstance(default, (list, tuple)) and not default:
        return ""
    return f"`{default}`"


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`"
    names = sorted(param.opts, key=len, reverse=True)
    text = ", ".join(f"`{n}`" for n in names)
    if param.secondary_opts:
        text += " / " + ", ".join(f"`{n}`" for n in param.secondary_opts)
    return text


def cli_reference() -> str:
    """Markdown for every command: a section each with its usage and a table of parameters."""
    out: list[str] = []
    for name, command in commands().items():
        if command.hidden:
            continue
        params = [p for p in command.params if not p.hidden and p.name != "help"]
        usage = " ".join(
            [f"searchkit {name}"]
            + [
                p.name.upper() if p.required else f"[{p.name.upper()}]"
                for p in params
                if p.param_type_name == "argument"
            ]
            + ["[OPTIONS]"]
        )
        out += [f"## searchkit {name}", "", _cell(command.help or ""), "", "```", usage, "```", ""]
        out += ["| parameter | help | default |", "|---|---|---|"]
        for param in params:
            help_text = _cell(param.help or "")
            if param.required:
                help_text += " (required)"
            out.append(f"| {_names(param)} | {help_text} | {_default(param)} |")
        out.append("")
    return "\n".join(out)


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def modules() -> list[tuple[str, str]]:
    """(dotted name, first paragraph of the docstring) for every subpackage and module."""
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if rel.name in ("__main__", "_version") or "__pycache__" in parts:
            continue
        rows.append((".".join(parts), _first_line(path)))
    return rows


def modules_table() -> str:
    lines = ["| module | what it is |", "|---|---|"]
    for name, doc in modules():
        shown = f"**`{name}`**" if (REPO / Path(*name.split("."))).is_dir() else f"`{name}`"
        lines.append(f"| {shown} | {_cell(doc)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if MODULES_MARKER in markdown:
        markdown = markdown.replace(MODULES_MARKER, modules_table())
    return markdown


if __name__ == "__main__":
    print(cli_reference())
    print(modules_table())
