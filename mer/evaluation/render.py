"""A small document model for reports: a title and a list of blocks, rendered to Markdown and to HTML.

Report code adds blocks once (`doc.heading(...)`, `doc.table(...)`); each block knows its two renderings, so the
Markdown file and the self-contained HTML page (images embedded as base64) always hold the same sections.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.files import atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
code,pre{background:#f6f8fa;border-radius:4px}
pre{padding:.8em;overflow-x:auto;font-size:.85em}
.banner{padding:.8em 1em;margin:1em 0;border-radius:6px;font-weight:600}
.leaky{background:#fde2e1;border:2px solid #c62828;color:#8e0000}
.partial{background:#fff4d6;border:2px solid #d19a00;color:#6b4e00}
img{max-width:100%;height:auto}
details summary{cursor:pointer;font-weight:600}
"""


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats with `digits` decimals, missing or non-finite values as an em dash."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def inline_html(text: str) -> str:
    """Escape, then render the little Markdown used in report prose: `code` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def md_table(df: pd.DataFrame) -> str:
    """A pipe table of already formatted cells (pipes escaped, newlines flattened)."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Heading:
    """A section heading (level 2 by default)."""

    text: str
    level: int = 2

    def markdown(self) -> str:
        """`## text`."""
        return f"{'#' * self.level} {self.text}"

    def html(self) -> str:
        """`<h2>text</h2>`."""
        return f"<h{self.level}>{html.escape(self.text)}</h{self.level}>"


@dataclass(frozen=True)
class Para:
    """A paragraph of prose with inline `code` and **bold**."""

    text: str

    def markdown(self) -> str:
        """The text as is."""
        return self.text

    def html(self) -> str:
        """A `<p>` with the inline markup rendered."""
        return f"<p>{inline_html(self.text)}</p>"


@dataclass(frozen=True)
class Bullets:
    """A bullet list."""

    items: tuple[str, ...]

    def markdown(self) -> str:
        """One `- item` line per item."""
        return "\n".join(f"- {item}" for item in self.items)

    def html(self) -> str:
        """A `<ul>`."""
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in self.items) + "</ul>"


@dataclass(frozen=True)
class Banner:
    """A loud warning (kind 'leaky' or 'partial' picks the HTML colours)."""

    text: str
    kind: str

    def markdown(self) -> str:
        """A bold quote."""
        return f"> **{self.text}**"

    def html(self) -> str:
        """A coloured `<div class="banner kind">`."""
        return f'<div class="banner {self.kind}">{inline_html(self.text)}</div>'


@dataclass(frozen=True, eq=False)
class Table:
    """A table; numbers are formatted by `fmt`, cells may hold inline markup."""

    frame: pd.DataFrame

    def _shown(self) -> pd.DataFrame:
        return self.frame.map(fmt) if len(self.frame) else self.frame.copy()

    def markdown(self) -> str:
        """A pipe table."""
        return md_table(self._shown())

    def html(self) -> str:
        """A `<table>` without index."""
        shown = self._shown()
        cells = shown.map(inline_html) if len(shown) else shown
        cells.columns = [inline_html(str(c)) for c in shown.columns]
        return cells.to_html(index=False, border=0, escape=False)


@dataclass(frozen=True, eq=False)
class Image:
    """A PNG: linked by file name in Markdown, embedded as base64 in HTML."""

    filename: str
    alt: str
    png: bytes

    def markdown(self) -> str:
        """`![alt](filename)`."""
        return f"![{self.alt}]({self.filename})"

    def html(self) -> str:
        """An `<img>` with a data URL."""
        data = base64.b64encode(self.png).decode("ascii")
        return f'<p><img alt="{html.escape(self.alt)}" src="data:image/png;base64,{data}"></p>'


@dataclass(frozen=True)
class Code:
    """A code block; in HTML folded under `summary` when one is given."""

    text: str
    lang: str = ""
    summary: str | None = None

    def markdown(self) -> str:
        """A fenced block."""
        return f"```{self.lang}\n{self.text.rstrip()}\n```"

    def html(self) -> str:
        """A `<pre>`, inside `<details>` when there is a summary."""
        block = f"<pre><code>{html.escape(self.text)}</code></pre>"
        if self.summary:
            block = f"<details><summary>{html.escape(self.summary)}</summary>{block}</details>"
        return block


Block = Heading | Para | Bullets | Banner | Table | Image | Code


class Document:
    """A titled list of blocks; `markdown()` and `html()` render all of them, `write` saves both files."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        """Add a section heading."""
        self.blocks.append(Heading(text, level))

    def para(self, text: str) -> None:
        """Add a paragraph."""
        self.blocks.append(Para(text))

    def bullets(self, items: Sequence[str]) -> None:
        """Add a bullet list."""
        self.blocks.append(Bullets(tuple(items)))

    def banner(self, text: str, kind: str) -> None:
        """Add a warning banner."""
        self.blocks.append(Banner(text, kind))

    def table(self, df: pd.DataFrame) -> None:
        """Add a table."""
        self.blocks.append(Table(df.copy()))

    def image(self, filename: str, alt: str, png: bytes) -> None:
        """Add a PNG image (the caller writes the file itself)."""
        self.blocks.append(Image(filename, alt, png))

    def code(self, text: str, lang: str = "", summary: str | None = None) -> None:
        """Add a code block."""
        self.blocks.append(Code(text, lang, summary))

    def markdown(self) -> str:
        """The whole document as Markdown (blocks separated by blank lines)."""
        return "\n\n".join([f"# {self.title}", *(b.markdown() for b in self.blocks)]) + "\n"

    def html(self) -> str:
        """The whole document as one self-contained HTML page."""
        body = "\n".join([f"<h1>{html.escape(self.title)}</h1>", *(b.html() for b in self.blocks)])
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + body + "\n</body></html>\n"
        )

    def write(self, md_path: Path, html_path: Path) -> None:
        """Write the Markdown and the HTML rendering."""
        atomic_write_text(md_path, self.markdown())
        atomic_write_text(html_path, self.html())
