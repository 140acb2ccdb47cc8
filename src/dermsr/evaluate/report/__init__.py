"""Study report writers: ``report.md``, a self-contained ``report.html``, ``results.json``, CSVs.

A report is a list of small blocks (:class:`Heading`, :class:`Paragraph`, :class:`Bullets`,
:class:`Table`, :class:`Figure`, :class:`Code`, :class:`Callout`); :func:`to_markdown` and
:func:`to_html` render the same blocks, so the two documents always show the same numbers.
Inline text may use ``**bold**`` and ```code``` (nothing else); the HTML writer escapes
everything else. Figures are PNG files beside the report: the Markdown links them, the HTML
embeds them as base64 ``data:`` URIs, so ``report.html`` needs no other file.

Every file is written through :func:`dermsr.io.atomic_write_bytes`.

>>> blocks = [Heading(1, "Title"), Table(["a", "b"], [["1", "x|y"]])]
>>> print(to_markdown(blocks))
# Title
<BLANKLINE>
| a | b |
|---|---|
| 1 | x\\|y |
<BLANKLINE>
>>> "<th>a</th>" in to_html(blocks, title="t")
True
"""

from __future__ import annotations

from .blocks import (
    Block as Block,
)
from .blocks import (
    Bullets,
    Callout,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    fmt,
    json_safe,
    to_csv,
    to_html,
    to_markdown,
    write_csv,
    write_json,
    write_text,
)
from .sections import CSV_COLUMNS as CSV_COLUMNS
from .sections import CSV_FILES as CSV_FILES
from .sections import METRIC_FORMAT as METRIC_FORMAT
from .sections import METRIC_LABEL as METRIC_LABEL
from .sections import fmt_metric as fmt_metric
from .study_report import build_report as build_report
from .study_report import write_report as write_report

__all__ = [
    "Bullets",
    "Callout",
    "Code",
    "Figure",
    "Heading",
    "Paragraph",
    "Table",
    "fmt",
    "json_safe",
    "to_csv",
    "to_html",
    "to_markdown",
    "write_csv",
    "write_json",
    "write_text",
]
