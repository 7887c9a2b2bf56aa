"""searchkit shell: the session's commands (unit), and the CLI driven through piped stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from searchkit.defaults import DEFAULT_K
from searchkit.errors import InvalidParameter
from searchkit.options import SearchOptions
from searchkit.query.shell import Message, Quit, Search, ShellSession, help_text


def test_a_plain_line_is_a_search_with_the_current_settings():
    shell = ShellSession()
    assert shell.handle("  how do vaccines work ") == Search(
        "how do vaccines work", DEFAULT_K, None, SearchOptions()
    )
    assert shell.handle("") is None and shell.handle("   ") is None


def test_commands_change_the_settings_of_later_searches():
    shell = ShellSession()
    assert shell.handle(":k 3") == Message("k = 3")
    assert shell.handle(":mode dense") == Message("mode = dense")
    assert shell.handle(":rerank off") == Message("rerank = off")
    assert shell.handle(":where year >= 2020 and topic = 'x'") == Message(
        "where = year >= 2020 and topic = 'x'"
    )
    assert shell.handle(":candidates 50") == Message("candidates = 50")
    assert shell.handle(":weight 0.25") == Message("weight = 0.25")
    assert shell.handle(":ef-search 64") == Message("ef_search = 64")
    search = shell.handle("q")
    assert isinstance(search, Search)
    assert (search.k, search.where) == (3, "year >= 2020 and topic = 'x'")
    assert search.options == SearchOptions(
        mode="dense", rerank=False, candidates=50, weight=0.25, ef_search=64
    )
    shell.handle(":where")
    shell.handle(":mode default")
    shell.handle(":rerank ON")
    search = shell.handle("q")
    assert search.where is None and search.options.mode is None and search.options.rerank


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (":k zero", "integer"),
        (":k 0", "at least 1"),
        (":mode sideways", "mode"),
        (":rerank maybe", "on or off"),
        (":candidates", "needs a value"),
        (":frobnicate 3", "unknown command :frobnicate"),
        (":weight 2", "weight"),
    ],
)
def test_bad_commands_are_refused_and_change_nothing(line, match):
    shell = ShellSession()
    with pytest.raises(InvalidParameter, match=match):
        shell.handle(line)
    assert shell == ShellSession()


def test_quit_help_and_show():
    shell = ShellSession()
    assert all(shell.handle(q) == Quit() for q in (":quit", ":q", ":exit"))
    assert shell.handle(":help") == Message(help_text())
    for command in (":k", ":where", ":rerank", ":mode", ":quit", "fusion"):
        assert command in help_text()
    shown = shell.handle(":show").text.splitlines()
    assert shown[:2] == [f"k = {DEFAULT_K}", "where = default"]
    assert "rerank = on" in shown


@pytest.mark.slow
def test_shell_answers_piped_queries_with_one_loaded_searcher(built_index, tmp_path):
    """End to end: one process answers every line; settings stick; a bad line is reported
    and the shell goes on; end of input ends it."""
    lines = [
        ":k 2",
        ":rerank off",
        ":mode dense",
        "how do plants make sugar from sunlight",
        ":where year <= 2001",  # vaccine (2000) and photo (2001)
        ":frobnicate",
        "vaccines and the immune system",
        ":k 1",
        ":where",
        "gravity so strong light cannot escape",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "searchkit", "shell", str(built_index), "--json"],
        input="\n".join(lines) + "\n",
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "error: unknown command :frobnicate" in out.stderr
    results = _json_documents(out.stdout)
    assert "k = 2\nrerank = off\nmode = dense\n" in out.stdout  # the settings, acknowledged
    assert [len(r["hits"]) for r in results] == [2, 2, 1]
    assert [r["hits"][0]["id"] for r in results] == ["photo", "vaccine", "blackhole"]
    assert all(r["mode"] == "dense" and not r["reranked"] for r in results)
    # the filter held for the second query only: documents after 2001 are left out
    assert all(h["metadata"]["year"] <= 2001 for h in results[1]["hits"])
    assert not (tmp_path / "cache" / "searchkit" / "shell_history").exists()  # not a terminal


def _json_documents(text: str) -> list[dict]:
    """The JSON objects (indented, from "{" to "}" lines) printed among the shell's other lines."""
    found, current = [], None
    for line in text.splitlines():
        if line == "{":
            current = []
        if current is not None:
            current.append(line)
            if line == "}":
                found.append(json.loads("\n".join(current)))
                current = None
    return found
