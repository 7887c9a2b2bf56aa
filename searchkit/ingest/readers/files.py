"""The text and title of one file: plain text, Markdown, HTML (stdlib parser), PDF (pypdf)."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

from searchkit.ingest.corpus import not_text

TEXT_SUFFIXES = (".txt", ".text")
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES

_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
# YAML front matter (Jekyll, Hugo, mkdocs): its title: wins over the first heading
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*$", re.S | re.M)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


class FileProblem(Exception):
    """Why a file gives no document (the reader adds its path)."""


def extract(path: Path, data: bytes, encoding: str) -> tuple[str, str, dict[str, object]]:
    """(text, title, extra metadata) of a file's bytes, by its suffix; ``FileProblem`` if none."""
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _pdf(data, path.stem)
    try:
        text = data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise FileProblem(not_text(data, encoding, err)) from None
    if suffix in HTML_SUFFIXES:
        page = _Page()
        page.feed(text)
        page.close()
        return page.text(), page.title or path.stem, {}
    if suffix in MARKDOWN_SUFFIXES:
        return text, markdown_title(text) or path.stem, {}
    return text, path.stem, {}


def markdown_title(text: str) -> str | None:
    """The title of a Markdown text: its front matter's ``title:``, else the first heading
    (``# Title`` or an underlined line) outside code fences."""
    if front := _FRONT.match(text):
        if found := _FRONT_TITLE.search(front.group(1)):
            return found.group(1).strip("\"'") or None
        text = text[front.end() :]
    fenced, previous = False, ""
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced, previous = not fenced, ""
            continue
        if fenced:
            continue
        if match := _ATX.match(line):
            return match.group(1).strip()
        if previous.strip() and _SETEXT.match(line):
            return previous.strip()
        previous = line
    return None


def _pdf(data: bytes, stem: str) -> tuple[str, str, dict[str, object]]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise FileProblem("reading PDF files needs: pip install 'searchkit[pdf]'") from None
    try:
        pdf = PdfReader(io.BytesIO(data))
        if pdf.is_encrypted and not pdf.decrypt(""):
            raise FileProblem("encrypted; decrypt it first (e.g. qpdf --decrypt) or exclude it")
        pages = [page.extract_text() or "" for page in pdf.pages]
        title = (pdf.metadata.title if pdf.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as err:
        raise FileProblem(f"not a readable PDF ({err})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise FileProblem(
            "no text layer (scanned pages?); run OCR first (e.g. ocrmypdf) or exclude it"
        )
    return text, title.strip() or stem, {"pages": len(pages)}


class _Page(HTMLParser):
    """The <title> and the visible text of an HTML page, a line per block."""

    SKIP = frozenset({"script", "style", "template", "noscript", "head"})
    BLOCKS = frozenset(
        "p div br li ul ol tr table h1 h2 h3 h4 h5 h6 section article header footer pre "
        "blockquote dt dd hr main nav aside figure figcaption".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._heading = ""
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag in self.SKIP or tag in ("title", "h1"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if "title" in self._open:
            self.title += data
        elif not any(t in self.SKIP for t in self._open):
            if "h1" in self._open:
                self._heading += data
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)

    def close(self) -> None:
        super().close()
        self.title = " ".join(self.title.split()) or " ".join(self._heading.split())
