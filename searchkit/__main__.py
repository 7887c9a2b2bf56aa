from __future__ import annotations

from searchkit.cli import app

app(prog_name="searchkit")
