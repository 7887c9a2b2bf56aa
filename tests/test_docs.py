"""The docs match the code: every CLI command and flag they show exists, the generated pages
cover the CLI, the package and ``searchkit.__all__``, and every Python example runs.

The Python blocks of ``README.md`` and ``docs/**/*.md`` run page by page (the blocks of a page
share one namespace, in order) in a folder holding what the examples name: ``corpus.jsonl``
(the tiny corpus of conftest), ``new.jsonl``, a BEIR folder ``datasets/tiny`` and, unless the
page builds it itself, ``indexes/corpus`` (built once, with the test reranker). A block that
cannot run offline has ``<!-- no-run: why -->`` on the line before its fence.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import warnings
from pathlib import Path

import pytest
import typer.main
from conftest import QUERIES, tiny_records, write_jsonl
from typer.testing import CliRunner

import searchkit
from searchkit.cli import app
from searchkit.defaults import DEFAULT_CANDIDATES, DEFAULT_K

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
NO_RUN = "<!-- no-run"
# what rich takes for a markup tag in a help text, and drops: "[the index's]" shows as ""
RICH_TAG = re.compile(r"(?<!\\)\[([a-z#/@][^[]*?)\]")


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()
COMMANDS = typer.main.get_command(app).commands


def blocks(page: Path) -> list[tuple[str, str, bool]]:
    """(language, code, runnable) of every fenced block of ``page``."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        found.append((match.group(1), match.group(2), not before.startswith(NO_RUN)))
    return found


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


# -- the CLI ------------------------------------------------------------------------------------


def test_every_command_has_help_and_appears_in_the_cli_reference():
    assert set(COMMANDS) >= {"index", "query", "info", "eval", "serve"}
    reference = HOOKS.cli_reference()
    assert HOOKS.CLI_MARKER in (DOCS / "reference" / "cli.md").read_text()
    for name, command in COMMANDS.items():
        assert command.help, f"searchkit {name} has no help text (its function's docstring)"
        assert f"## searchkit {name}\n" in reference, f"the CLI reference lacks searchkit {name}"
        section = reference.split(f"## searchkit {name}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                for flag in param.opts:
                    assert f"`{flag}`" in section, f"CLI reference: searchkit {name} {flag}"


def test_help_texts_read_cleanly():
    runner = CliRunner()
    for name, command in COMMANDS.items():
        for param in command.params:
            text = getattr(param, "help", None) or ""
            assert not RICH_TAG.search(text), (
                f"searchkit {name} {param.name}: rich drops {RICH_TAG.search(text).group()!r} "
                "from the help as markup; write the default as (default: X)"
            )
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for line in result.output.splitlines():
            assert not re.search(r"\S \.(\s|$)", line), f"searchkit {name} --help: {line.strip()}"


def test_cli_defaults_are_the_library_defaults():
    for name in ("query", "eval"):
        params = {p.name: p.default for p in COMMANDS[name].params}
        assert params["candidates"] == DEFAULT_CANDIDATES, name
    assert {p.name: p.default for p in COMMANDS["query"].params}["k"] == DEFAULT_K


def _searchkit_lines(code: str) -> list[str]:
    """Each ``searchkit ...`` command of a shell block (continuations joined, ``;`` split)."""
    lines = code.replace("\\\n", " ").splitlines()
    return [
        part.strip()
        for line in lines
        for part in re.split(r";|&&|\|\|", line.split(" # ", 1)[0])
        if part.strip().startswith("searchkit ")
    ]


def _commands_shown(page: Path) -> list[str]:
    """The ``searchkit ...`` commands of a page: in its shell blocks and its inline code."""
    found = []
    for lang, code, _ in blocks(page):
        if lang in ("", "bash", "sh", "shell", "console"):
            found += _searchkit_lines(code)
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    found += re.findall(r"`(searchkit [a-z][^`]*)`", prose)
    return found


def test_shell_examples_name_real_commands_and_flags():
    checked = 0
    for page in PAGES:
        for line in _commands_shown(page):
            words = shlex.split(line, comments=True)
            where = f"{_name(page)}: {line}"
            assert len(words) > 1 and words[1] in COMMANDS, f"no such command: {where}"
            command = COMMANDS[words[1]]
            flags = {f for p in command.params for f in (*p.opts, *p.secondary_opts)}
            for word in words[2:]:
                if word.startswith("-") and word not in ("-", "--"):
                    flag = word.split("=", 1)[0]
                    assert flag in flags, f"searchkit {words[1]} has no {flag}: {where}"
            checked += 1
    assert checked > 80


# -- the generated pages ------------------------------------------------------------------------


def test_api_reference_covers_searchkit_all():
    api = (DOCS / "reference" / "api.md").read_text()
    for name in searchkit.__all__:
        if name != "__version__":
            assert f"::: searchkit.{name}\n" in api, f"docs/reference/api.md lacks {name}"


def test_module_map_covers_every_module():
    names = dict(HOOKS.modules())
    assert HOOKS.MODULES_MARKER in (DOCS / "contributing.md").read_text()
    for path in (REPO / "searchkit").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        if rel.name in ("__main__", "_version"):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        dotted = ".".join(parts)
        assert dotted in names, dotted
        assert names[dotted], f"{path}: no docstring for the module map"


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    assert "`make demo` needs no network" in text
    for page in ("quickstart", "reference/cli", "reference/api", "contributing"):
        assert f"(docs/{page}.md)" in text, page
    assert "0.6451" in text and "0.728" in text


def test_docs_pages_are_all_in_the_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"


# -- the Python examples ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docs_index(tmp_path_factory: pytest.TempPathFactory, reranker_path: Path) -> Path:
    from searchkit import build_index

    root = tmp_path_factory.mktemp("docs-index")
    corpus = write_jsonl(root / "corpus.jsonl", tiny_records())
    return build_index(corpus, root / "corpus", reranker=str(reranker_path), progress=False).path


def _workdir(root: Path, index: Path, build_own: bool) -> None:
    write_jsonl(root / "corpus.jsonl", tiny_records())
    write_jsonl(
        root / "new.jsonl",
        [
            {
                "_id": "comet",
                "title": "Comets",
                "text": "A comet is an icy body that grows a tail.",
            },
            {
                "_id": "coffee",
                "title": "Coffee",
                "text": "Espresso is strong coffee.",
                "year": 2024,
            },
        ],
    )
    beir = root / "datasets" / "tiny"
    (beir / "qrels").mkdir(parents=True)
    write_jsonl(beir / "corpus.jsonl", tiny_records())
    write_jsonl(
        beir / "queries.jsonl", [{"_id": f"q{i}", "text": q} for i, q in enumerate(QUERIES)]
    )
    qrels = [f"q{i}\t{doc}\t1" for i, doc in enumerate(QUERIES.values())]
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels))
    if not build_own:
        shutil.copytree(index, root / "indexes" / "corpus")


RUNNABLE = [
    page for page in PAGES if any(lang == "python" and run for lang, _, run in blocks(page))
]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_python_examples_run(page: Path, docs_index: Path, tmp_path: Path):
    code = [c for lang, c, run in blocks(page) if lang == "python" and run]
    _workdir(tmp_path, docs_index, build_own=any('build_index("corpus.jsonl")' in c for c in code))
    namespace: dict = {"__name__": "__docs__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # an index built with the default (hub) reranker answers in retrieval order offline
            warnings.simplefilter("ignore", searchkit.RerankerUnavailableWarning)
            for n, block in enumerate(code, 1):
                try:
                    exec(compile(block, f"{_name(page)} python block {n}", "exec"), namespace)
                except Exception as err:
                    raise AssertionError(f"{_name(page)}, python block {n}: {err!r}") from err
    finally:
        os.chdir(cwd)
