"""Report blocks and their writers: Markdown, self-contained HTML, CSV and JSON, all written atomically."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...io import atomic_write_bytes


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str | None = None

@dataclass(frozen=True)
class Paragraph:
    text: str

@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]

@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str | None = None
    #: columns (by index) whose cells are numbers, right-aligned
    numeric: Sequence[int] = field(default_factory=tuple)

@dataclass(frozen=True)
class Figure:
    path: str  # relative to the report's folder
    caption: str

@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""

@dataclass(frozen=True)
class Callout:
    """A note that must not be missed: ``kind`` is ``"warning"`` or ``"note"``."""

    kind: str
    text: str

Block = Heading | Paragraph | Bullets | Table | Figure | Code | Callout

# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".4g", *, none: str = "n/a") -> str:
    """Format a number for a table: ``None`` → ``none``, ±inf → ``inf``/``-inf``, NaN → ``nan``.

    >>> fmt(3.14159, ".2f"), fmt(None), fmt(float("inf"), ".2f"), fmt(True), fmt(7, ".2f")
    ('3.14', 'n/a', 'inf', 'yes', '7.00')
    """
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)

def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"``, NumPy
    scalars/arrays as Python numbers/lists, paths as strings, tuples as lists (strict JSON).

    >>> json_safe({"a": float("inf"), "b": (1, 2.5), "c": None})
    {'a': 'inf', 'b': [1, 2.5], 'c': None}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # NumPy scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return str(obj)

# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")

def to_markdown(blocks: Iterable[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Paragraph):
            out.append(f"{b.text}\n")
        elif isinstance(b, Bullets):
            out.append("".join(f"- {item}\n" for item in b.items))
        elif isinstance(b, Callout):
            label = "Warning" if b.kind == "warning" else "Note"
            out.append(f"> **{label}:** {b.text}\n")
        elif isinstance(b, Code):
            out.append(f"```{b.language}\n{b.text.rstrip()}\n```\n")
        elif isinstance(b, Figure):
            out.append(f"![{_md_cell(b.caption)}]({b.path})\n\n*{b.caption}*\n")
        elif isinstance(b, Table):
            lines = []
            if b.caption:
                lines.append(f"**{b.caption}**\n")
            lines.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            seps = ["---:" if i in b.numeric else "---" for i in range(len(b.headers))]
            lines.append("|" + "|".join(seps) + "|")
            for row in b.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("\n".join(lines) + "\n")
        else:  # pragma: no cover - a programming error
            raise TypeError(f"unknown report block {type(b).__name__}")
    return "\n".join(out)

# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72rem;
margin:2rem auto;padding:0 1rem;line-height:1.45;color:#1d1d1f}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
caption{caption-side:top;text-align:left;font-weight:600;padding:.2rem 0}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9rem;color:#444}
.callout{padding:.5rem .8rem;margin:.8rem 0;border-left:4px solid #3b82f6;background:#eff6ff}
.callout.warning{border-color:#dc2626;background:#fef2f2}
"""

def _inline_html(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        parts.append(html.escape(text[pos:m.start()]))
        if m.group(1) is not None:
            parts.append(f"<strong>{_inline_html(m.group(1))}</strong>")
        else:
            parts.append(f"<code>{html.escape(m.group(2))}</code>")
        pos = m.end()
    parts.append(html.escape(text[pos:]))
    return "".join(parts)

def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

def to_html(
    blocks: Iterable[Block],
    *,
    title: str,
    load_figure: Callable[[str], bytes] | None = None,
) -> str:
    """Render blocks as one self-contained HTML page.

    ``load_figure(path)`` returns a figure's PNG bytes, embedded as a ``data:`` URI; without it
    figures are left out (their captions stay). Nothing in the page refers to another file.
    """
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            anchor = f' id="{html.escape(b.anchor)}"' if b.anchor else ""
            out.append(f"<h{level}{anchor}>{_inline_html(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in b.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(b, Callout):
            label = "Warning" if b.kind == "warning" else "Note"
            kind = "warning" if b.kind == "warning" else "note"
            out.append(f'<div class="callout {kind}"><strong>{label}:</strong> {_inline_html(b.text)}</div>')
        elif isinstance(b, Code):
            out.append(f"<pre><code>{html.escape(b.text.rstrip())}</code></pre>")
        elif isinstance(b, Figure):
            img = ""
            if load_figure is not None:
                img = f'<img src="{_data_uri(load_figure(b.path))}" alt="{html.escape(b.caption)}">'
            out.append(f"<figure>{img}<figcaption>{_inline_html(b.caption)}</figcaption></figure>")
        elif isinstance(b, Table):
            rows = ["<table>"]
            if b.caption:
                rows.append(f"<caption>{_inline_html(b.caption)}</caption>")
            rows.append("<thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in b.headers)
                        + "</tr></thead><tbody>")
            for row in b.rows:
                cells = "".join(
                    f'<td class="num">{_inline_html(c)}</td>' if i in b.numeric
                    else f"<td>{_inline_html(c)}</td>"
                    for i, c in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            rows.append("</tbody></table>")
            out.append("".join(rows))
        else:  # pragma: no cover
            raise TypeError(f"unknown report block {type(b).__name__}")
    out.append("</body></html>\n")
    return "\n".join(out)

# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as CSV text (header first); floats keep full precision (``repr``).

    >>> print(to_csv([{"a": 1, "b": 0.1}, {"a": 2, "b": float("inf")}]), end="")
    a,b
    1,0.1
    2,inf
    """
    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else _csv_value(r.get(c)) for c in columns])
    return buf.getvalue()

def _csv_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else fmt(v)
    if isinstance(v, (list, tuple)):
        return " ".join(_csv_value(x) for x in v)
    tolist = getattr(v, "tolist", None)
    if callable(tolist):
        return _csv_value(tolist())
    return str(v)

def write_text(path: str | Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return Path(path)

def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON (no NaN/Infinity literals: see :func:`json_safe`), atomically."""
    text = json.dumps(json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return write_text(path, text + "\n")

def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    return write_text(path, to_csv(rows, columns))
