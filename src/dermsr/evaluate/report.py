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

from ..io import atomic_write_bytes
from .metric_info import FIDELITY_METRICS, METRIC_INFO

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


# ---------------------------------------------------------------------------------------------
# the study report
# ---------------------------------------------------------------------------------------------
#: How each metric is shown in tables (results.json and the CSVs keep full precision).
METRIC_FORMAT = {m.name: m.fmt for m in METRIC_INFO.values()}
METRIC_LABEL = {m.name: m.label for m in METRIC_INFO.values()}
#: The thesis's table numbers for the pairwise metrics.
THESIS_TABLE = {"mse": 2, "psnr": 3, "ssim": 4, "lpips": 5}

#: CSV files written beside the report and the rows (results.json keys) they hold.
CSV_FILES = {
    "timing.csv": "timing",
    "timing_summary.csv": "timing_summary",
    "pairwise.csv": "pairwise",
    "ground_truth.csv": "ground_truth",
    "consistency.csv": "consistency",
}
#: Leading columns of each CSV (any further keys follow), so an empty table still has a header.
CSV_COLUMNS = {
    "timing": ["image", "backend", "init_s", "n", "mean_s", "std_s", "median_s", "min_s", "max_s", "runs_s"],
    "timing_summary": ["backend", "init_s_first", "init_s_mean", "n", "mean_s", "std_s", "median_s", "min_s", "max_s"],
    "pairwise": ["image", "a", "b", "mse", "psnr", "ssim", "lpips", "max_abs", "mean_abs"],
    "ground_truth": ["image", "method", "mse", "psnr", "ssim", "lpips", "max_abs", "mean_abs", "sharpness"],
    "consistency": ["image", "backend", "runs", "verdict", "bit_identical", "max_abs_dev", "nonfinite",
                    "out_of_range", "extreme", "blank", "failures"],
}


def fmt_metric(name: str, value: Any) -> str:
    """A metric value as the report's tables show it.

    >>> fmt_metric("psnr", 41.23456), fmt_metric("mse", 1.5e-06), fmt_metric("lpips", None)
    ('41.23', '1.500e-06', 'n/a')
    """
    return fmt(value, METRIC_FORMAT.get(name, ".4g"))


def _ms(seconds: Any, spec: str = ".1f") -> str:
    return "n/a" if seconds is None else format(float(seconds) * 1000.0, spec)


def _mean(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and not isinstance(v, str)]
    if not vals:
        return None
    if any(math.isinf(v) for v in vals):
        return math.inf if all(v > 0 for v in vals if math.isinf(v)) else math.nan
    return sum(vals) / len(vals)


def _images(results: Mapping[str, Any]) -> list[str]:
    return [im["image"] for im in results["config"]["images"]]


def _speed_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in results.get("speed") or [] if s.get("status") == "ok" and s.get("median_ms") is not None]


def _timing_blocks(results: Mapping[str, Any]) -> list[Block]:
    versions = {r["name"]: r.get("version") for r in results["config"]["runtimes"]}
    summary = results["timing_summary"]
    speed = _speed_rows(results)
    blocks: list[Block] = [Heading(2, "1. Inference time (thesis Table 1)", "timing")]
    if speed:
        size = f"{speed[0]['width']}×{speed[0]['height']}"
        blocks += [
            Paragraph(
                f"Measured as `dermsr bench` measures: each runtime in a fresh process (so no other "
                f"runtime's thread pool competes), initialisation (load, any export, first run), one "
                f"warm-up run, then {results['config']['runs']} timed `Enhancer.run` calls on a {size} "
                "input; the median is the figure to compare. The same numbers come from "
                f"`dermsr bench --sizes {speed[0]['width']} --repeat {results['config']['runs']} --no-raw`."
            ),
            Table(["runtime", "version", "median (ms)", "min (ms)", "max (ms)", "initialisation (ms)",
                   "peak memory (MB)"],
                  [[f"`{s['backend']}`", versions.get(s["backend"]) or s.get("runtime_version") or "n/a",
                    fmt(s.get("median_ms"), ".1f"), fmt(s.get("min_ms"), ".1f"), fmt(s.get("max_ms"), ".1f"),
                    fmt(s.get("init_ms"), ".0f"), fmt(s.get("peak_rss_mb"), ".0f")] for s in speed],
                  numeric=(2, 3, 4, 5, 6)),
        ]
        fastest = min(speed, key=lambda s: s["median_ms"])
        blocks.append(Paragraph(
            f"Fastest on this machine: **{fastest['backend']}** ({fmt(fastest['median_ms'], '.1f')} ms median). "
            "Which runtime is fastest depends on the machine; a phone can rank them differently."
        ))
    rows = [[
        f"`{s['backend']}`", versions.get(s["backend"]) or "n/a", fmt(s.get("init_s_first"), ".3f"),
        f"{_ms(s.get('mean_s'))} ± {_ms(s.get('std_s'))}", _ms(s.get("median_s")),
        _ms(s.get("min_s")), str(s.get("n", 0)),
    ] for s in summary]
    blocks += [
        Paragraph(
            ("In-process timings, the thesis's protocol: " if speed else "")
            + f"inference only, each of the {results['config']['runs']} timed calls of `Enhancer.run` on the "
            "prepared float32 NCHW tensor of each image, after one warm-up call, with every runtime loaded "
            "in this one process (their thread pools compete, so these run slower than the fresh-process "
            "figures above). Initialisation (runtime load, any model export or compilation, and the first run) is "
            "timed separately; for the first image it includes a one-time model conversion when the "
            "runtime's artifact cache is cold. Pooled over all images; ± is the sample standard deviation."
        ),
        Table(["runtime", "version", "initialisation (s, first image)", "inference mean ± std (ms)",
               "median (ms)", "min (ms)", "runs"], rows, numeric=(2, 3, 4, 5, 6)),
    ]
    per = [[
        t["image"], f"`{t['backend']}`", fmt(t.get("init_s"), ".3f"),
        f"{_ms(t.get('mean_s'))} ± {_ms(t.get('std_s'))}", _ms(t.get("median_s")),
        " ".join(_ms(v) for v in t.get("runs_s", [])) or "n/a",
    ] for t in results["timing"]]
    blocks.append(Table(["image", "runtime", "initialisation (s)", "mean ± std (ms)", "median (ms)",
                         "every run (ms)"], per, caption="Per image", numeric=(2, 3, 4)))
    if summary and not speed:
        fastest = min((s for s in summary if s.get("mean_s") is not None), key=lambda s: s["mean_s"], default=None)
        if fastest is not None:
            blocks.append(Paragraph(
                f"Fastest on this machine: **{fastest['backend']}** ({_ms(fastest['mean_s'])} ms mean). "
                "Which runtime is fastest depends on the machine; a phone can rank them differently."
            ))
    return blocks


def _pairwise_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = results["pairwise"]
    images = _images(results)
    blocks: list[Block] = [Heading(2, "2. Agreement between runtimes (thesis Tables 2-5)", "pairwise")]
    if not rows:
        blocks.append(Callout("note", "Fewer than two runtimes produced output, so there is nothing to compare."))
        return blocks
    blocks.append(Paragraph(
        "Every pair of runtimes, on the same degraded input: identical outputs give MSE 0, "
        "PSNR inf, SSIM 1 and LPIPS 0. Outputs are the clamped [0, 1] images `Enhancer.run` returns."
    ))
    pairs = list(dict.fromkeys((r["a"], r["b"]) for r in rows))
    lpips_ok = results["config"]["lpips"]["computed"]
    for m in (*METRICS_ORDER, "max_abs"):
        if m == "lpips" and not lpips_ok:
            blocks.append(Callout("warning", "LPIPS (thesis Table 5) was **not computed**: " + _lpips_how(results)))
            continue
        table_rows = []
        for a, b in pairs:
            vals = {r["image"]: r.get(m) for r in rows if (r["a"], r["b"]) == (a, b)}
            table_rows.append([f"`{a}` vs `{b}`", *(fmt_metric(m, vals.get(i)) for i in images),
                               fmt_metric(m, _mean(vals.values()))])
        caption = (f"Thesis Table {THESIS_TABLE[m]}: {METRIC_LABEL[m]}" if m in THESIS_TABLE
                   else f"{METRIC_LABEL[m]} (largest absolute pixel difference, [0, 1] scale; not in the thesis)")
        blocks.append(Table(["pair", *images, "mean"], table_rows, caption=caption,
                            numeric=tuple(range(1, len(images) + 2))))
    return blocks


METRICS_ORDER = FIDELITY_METRICS


def _lpips_how(results: Mapping[str, Any]) -> str:
    reason = results["config"]["lpips"].get("reason") or "no backbone"
    first = reason.split(". ")[0]
    return (f"{first}. Provide ImageNet AlexNet weights with `--lpips-backbone PATH` or the "
            "environment variable `DERMSR_LPIPS_BACKBONE=PATH` (torchvision's "
            "`alexnet-owt-7be5be79.pth`, or AlexNet's `features` state dict), then run the study again.")


def _truth_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = results["ground_truth"]
    images = _images(results)
    lpips_ok = results["config"]["lpips"]["computed"]
    metrics = [m for m in METRICS_ORDER if lpips_ok or m != "lpips"]
    blocks: list[Block] = [
        Heading(2, "3. Against the ground truth (not in the thesis)", "ground-truth"),
        Paragraph(
            "The thesis compared runtimes only with each other, which says whether they agree but not "
            "whether the model helps. Here every output, and a bicubic ×scale upscale of the same "
            "low-resolution input, is scored against the ground truth: "
            f"{results['config']['ground_truth']}. Sharpness is the variance of the Laplacian of the grey "
            "image (higher is sharper; not a measure of fidelity)."
        ),
    ]
    blocks.extend(_verdict_blocks(results.get("verdict")))
    for m, mv in (results.get("model_verdicts") or {}).items():
        blocks.append(Paragraph(f"For comparison, the model `{m}` (on `{results['config'].get('compare_backend')}`):"))
        blocks.extend(_verdict_blocks(mv))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    mean_rows = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        label = "**bicubic baseline**" if method == "bicubic" else (
            "ground truth" if method == "ground truth" else f"`{method}`")
        mean_rows.append([label, *(fmt_metric(m, _mean(r.get(m) for r in mine)) if method != "ground truth"
                                   else "—" for m in metrics),
                          fmt_metric("sharpness", _mean(r.get("sharpness") for r in mine))])
    headers = [METRIC_LABEL[m] for m in metrics]
    blocks.append(Table(["method", *headers, "sharpness"], mean_rows,
                        caption=f"Mean over {len(images)} image(s)", numeric=tuple(range(1, len(metrics) + 2))))
    per_rows = [[r["image"], "bicubic baseline" if r["method"] == "bicubic" else r["method"],
                 *(fmt_metric(m, r.get(m)) if r["method"] != "ground truth" else "—" for m in metrics),
                 fmt_metric("sharpness", r.get("sharpness"))] for r in rows]
    blocks.append(Table(["image", "method", *headers, "sharpness"], per_rows, caption="Per image",
                        numeric=tuple(range(2, len(metrics) + 3))))
    if not lpips_ok:
        blocks.append(Callout("warning", "LPIPS against the ground truth was **not computed**: " + _lpips_how(results)))
    return blocks


_DIRECTION = {m: "higher" if METRIC_INFO[m].higher_is_better else "lower" for m in FIDELITY_METRICS}


def _verdict_blocks(v: Mapping[str, Any] | None) -> list[Block]:
    if not v or not v.get("metrics"):
        return [Callout("note", "No runtime produced output, so the enhancement could not be judged.")]
    method = v["method"]
    parts = []
    for m, d in v["metrics"].items():
        word = "better" if d["better"] else "worse"
        parts.append(
            f"{METRIC_LABEL[m]} {fmt_metric(m, d['method_mean'])} vs {fmt_metric(m, d['baseline_mean'])} "
            f"({word}; {_DIRECTION[m]} is better; wins on {d['wins']} of {d['images']} image(s))"
        )
    headline = {
        "helps": f"**Yes: on these images the enhancement helps.** `{method}` beats the bicubic baseline "
                 "on every metric against the ground truth.",
        "does not help": f"**No: on these images the enhancement does not help.** `{method}` is worse than "
                         "plain bicubic upscaling on every metric against the ground truth.",
        "mixed": f"**Partly: on these images the enhancement helps on some metrics and hurts on others.** "
                 f"Against the ground truth, `{method}` is better than bicubic on "
                 + ", ".join(METRIC_LABEL[m] for m, d in v["metrics"].items() if d["better"])
                 + " and worse on "
                 + ", ".join(METRIC_LABEL[m] for m, d in v["metrics"].items() if not d["better"]) + ".",
    }.get(v["verdict"], "The comparison with the baseline is inconclusive.")
    return [Paragraph("Does the enhancement help? " + headline),
            Bullets([f"{p} (mean over images, `{method}` vs bicubic)" for p in parts])]


def _consistency_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = results["consistency"]
    lo, hi = results["config"].get("consistency_range", (None, None))
    bound = f"[{fmt(lo, 'g')}, {fmt(hi, 'g')}]"
    blocks: list[Block] = [
        Heading(2, "4. Repeated-run consistency", "consistency"),
        Paragraph(
            f"After the timed runs, each runtime ran the same input {results['config']['repeats']} more "
            "times through its raw session (before dermsr's output check and clamping), as the thesis's "
            f"repeated runs did. Each output is checked for non-finite values, values outside {bound} "
            "(beyond any overshoot of [0, 1] the model shows on real inputs; the bound `Enhancer.run` enforces), extreme "
            "values (|v| > 1000), blank images and exceptions, and compared with the first run. The "
            "thesis's ExecuTorch app sometimes returned values like 5.6e19 or all-black images."
        ),
    ]
    table = [[
        f"`{r['backend']}`", r["image"], str(r.get("runs", "n/a")), r.get("verdict", "n/a"),
        fmt(r.get("bit_identical")), fmt(r.get("max_abs_dev"), ".3e"), str(r.get("nonfinite", "n/a")),
        str(r.get("out_of_range", "n/a")), str(r.get("extreme", "n/a")), str(r.get("blank", "n/a")),
        str(r.get("failures", "n/a")),
    ] for r in rows]
    blocks.append(Table(["runtime", "image", "runs", "verdict", "bit-identical", "max deviation",
                         "non-finite values", f"values outside {bound}", "extreme values", "blank runs",
                         "failed runs"], table, numeric=(2, 5, 6, 7, 8, 9, 10)))
    bad = [r for r in rows if r.get("verdict") == "corrupted"]
    if bad:
        detail = "; ".join(f"{r['backend']} on {r['image']}: {r.get('problems') or 'corrupted'}" for r in bad)
        blocks.append(Callout("warning", f"**Corrupted or failed runs**: {detail}"))
    elif rows:
        unstable = sorted({r["backend"] for r in rows if r.get("bit_identical") is False})
        if unstable:
            blocks.append(Callout("note", "Repeated runs were not bit-identical (but sane) on: "
                                  + ", ".join(unstable) + "; see the largest deviation above."))
        else:
            blocks.append(Paragraph("Every runtime returned bit-identical, sane outputs on every repeated run."))
    return blocks


def _figure_blocks(results: Mapping[str, Any]) -> list[Block]:
    figs = results.get("figures", [])
    blocks: list[Block] = [Heading(2, "5. Figures", "figures")]
    if not figs:
        blocks.append(Paragraph("No figures were drawn (`--no-figures`)."))
        return blocks
    titles = {"grid": "Qualitative comparison", "histogram": "Grey-level histograms (thesis figures)",
              "diff": "Difference maps against the reference runtime (thesis figures)"}
    for kind in ("grid", "histogram", "diff"):
        mine = [f for f in figs if f["kind"] == kind]
        if mine:
            blocks.append(Heading(3, titles[kind]))
            blocks.extend(Figure(f["file"], f["caption"]) for f in mine)
    return blocks


def _config_blocks(results: Mapping[str, Any]) -> list[Block]:
    cfg = results["config"]
    model = cfg["model"]
    mach = cfg["machine"]
    blocks: list[Block] = [
        Heading(2, "Configuration", "configuration"),
        Bullets([
            f"dermsr {cfg['dermsr_version']}, run on {cfg['date']}; wall time {fmt(results.get('wall_time_s'), '.1f')} s",
            f"machine: {mach['cpu_model']}, {mach['logical_cores']} logical cores "
            f"({mach['usable_cores']} usable), {mach['platform']}, Python {mach['python']}; 1-minute load "
            f"average {fmt(mach.get('load_average_start'), '.1f')} at the start, "
            f"{fmt(mach.get('load_average_end'), '.1f')} at the end",
            f"model: `{model['name']}` ({model['architecture']}, ×{model['scale']}, {model['num_conv']} body "
            f"convolutions, {model['num_params']:,} parameters, sha256 `{model['sha256'][:16]}…`); {model['source']}",
            f"seed {cfg['seed']}, {cfg['runs']} timed runs, {cfg['repeats']} consistency runs, "
            f"threads {cfg['threads'] if cfg['threads'] is not None else 'runtime default'}, "
            f"reference runtime `{cfg['reference_backend']}`",
            "LPIPS: " + (f"AlexNet v0.1, backbone {cfg['lpips']['backbone']}" if cfg["lpips"]["computed"]
                         else "**skipped**: " + _lpips_how(results)),
            f"ground truth: {cfg['ground_truth']}",
            f"baseline: {cfg['baseline']}",
            f"timing: {cfg['timing']}",
        ]),
        Table(["image", "size (H×W)", "HR crop", "LR input", "output", "sha256"], [
            [im["image"], f"{im['height']}×{im['width']}", "×".join(map(str, im["hr_size"])),
             "×".join(map(str, im["lr_shape"][2:])), "×".join(map(str, im["output_size"])), f"`{im['sha256'][:16]}…`"]
            for im in cfg["images"]], caption="Images"),
        Table(["runtime", "available", "version", "note"], [
            [f"`{r['name']}`", fmt(r["available"]), r.get("version") or "n/a",
             next((s["reason"] for s in [*cfg["backends_skipped"], *cfg.get("backends_failed", [])]
                   if s["backend"] == r["name"]), "not requested")
             if r["name"] not in cfg["backends_run"] else "compared"]
            for r in cfg["runtimes"]], caption="Runtimes"),
        Paragraph("Degradation (the `thesis` preset, as `Degrader.to_dict()`):"),
        Code(json.dumps(json_safe(cfg["degrader"]), indent=2), "json"),
        Paragraph("Command:"),
        Code(cfg["command"], "sh"),
        Paragraph("Every number above, with full precision, is in `results.json` and in "
                  + ", ".join(f"`{f}`" for f in CSV_FILES) + "."),
    ]
    return blocks


def _busy(machine: Mapping[str, Any]) -> str | None:
    """A warning when other work competed for the CPU (timings then overstate inference time)."""
    loads = [v for v in (machine.get("load_average_start"), machine.get("load_average_end")) if v is not None]
    cores = machine.get("usable_cores") or machine.get("logical_cores")
    if not loads or not cores or max(loads) <= cores:
        return None
    return (f"The machine was busy: 1-minute load average up to {max(loads):.1f} on {cores} usable core(s). "
            "Other processes competed for the CPU, so the inference times overstate what these runtimes "
            "take on an idle machine; their ranking may change too.")


def build_report(results: Mapping[str, Any]) -> list[Block]:
    """The study report as blocks (see :func:`to_markdown` / :func:`to_html`)."""
    cfg = results["config"]
    run = cfg["backends_run"]
    images = _images(results)
    blocks: list[Block] = [
        Heading(1, "dermsr study: SRVGGNetCompact on " + ", ".join(run)),
        Paragraph(
            f"{len(images)} image(s) ({', '.join(images)}) degraded with the thesis pipeline, enhanced "
            f"×{cfg['model']['scale']} by `{cfg['model']['name']}` on {len(run)} runtime(s), compared "
            "with each other, with the ground truth and with a bicubic baseline. "
            f"dermsr {cfg['dermsr_version']}, {cfg['date']}, {cfg['machine']['cpu_model']} "
            f"({cfg['machine']['usable_cores']} cores); the study took {fmt(results.get('wall_time_s'), '.1f')} s."
        ),
    ]
    for s in cfg["backends_skipped"]:
        blocks.append(Callout("note", f"Runtime `{s['backend']}` was **skipped**: {s['reason']}"))
    for s in cfg.get("backends_failed", []):
        blocks.append(Callout("warning", f"Runtime `{s['backend']}` **failed** and is missing from the "
                              f"comparisons: {s['reason']}"))
    errors = results.get("run_errors", [])
    if errors:
        shown = "; ".join(f"{e['backend']} on {e['image']}, {e['error']}" for e in errors[:10])
        more = f" (and {len(errors) - 10} more in results.json)" if len(errors) > 10 else ""
        blocks.append(Callout("warning", f"**{len(errors)} run(s) raised an error** (left out of the timings): {shown}{more}"))
    if not cfg["lpips"]["computed"]:
        blocks.append(Callout("warning", "LPIPS was **skipped**: " + _lpips_how(results)))
    for n in results.get("notes", []):
        blocks.append(Callout("note", n))
    busy = _busy(cfg["machine"])
    if busy:
        blocks.append(Callout("warning", busy))
    summary = []
    v = results.get("verdict")
    if v and v.get("metrics"):
        word = {"helps": "**helps**", "does not help": "**does not help**", "mixed": "**mixed**"}.get(
            v["verdict"], "inconclusive")
        numbers = ", ".join(
            f"{METRIC_LABEL[m]} {fmt_metric(m, d['method_mean'])} vs {fmt_metric(m, d['baseline_mean'])}"
            for m, d in v["metrics"].items() if m != "mse")
        summary.append(f"Enhancement against the ground truth, `{v['method']}` vs bicubic: {word} ({numbers}; "
                       "section 3)")
    if results["pairwise"]:
        worst = min(results["pairwise"], key=lambda r: r["psnr"])
        big = max(results["pairwise"], key=lambda r: r["max_abs"])
        summary.append(
            f"Runtime agreement: lowest pairwise PSNR {fmt_metric('psnr', worst['psnr'])} dB "
            f"(`{worst['a']}` vs `{worst['b']}`, {worst['image']}); largest pixel difference "
            f"{fmt_metric('max_abs', big['max_abs'])} (`{big['a']}` vs `{big['b']}`). The thesis reported 34-45 dB."
        )
    if _speed_rows(results):
        summary.append("Median inference time (fresh process, as dermsr bench): " + ", ".join(
            f"{s['backend']} {fmt(s['median_ms'], '.1f')} ms" for s in _speed_rows(results)))
    elif results["timing_summary"]:
        summary.append("Mean inference time: " + ", ".join(
            f"{s['backend']} {_ms(s['mean_s'])} ms" for s in results["timing_summary"]))
    for m, mv in (results.get("model_verdicts") or {}).items():
        if mv.get("metrics"):
            summary.append(f"Model `{m}` against the ground truth vs bicubic: **{mv['verdict']}** (section 3)")
    if results["consistency"]:
        corrupt = [r for r in results["consistency"] if r.get("verdict") == "corrupted"]
        same = all(r.get("bit_identical") for r in results["consistency"])
        summary.append("Repeated runs: " + ("**corrupted or failed runs found** (section 4)" if corrupt else
                       "bit-identical on every runtime" if same else "no corruption; small run-to-run differences"))
    if summary:
        blocks.append(Bullets(summary))
    blocks += _timing_blocks(results)
    blocks += _pairwise_blocks(results)
    blocks += _truth_blocks(results)
    blocks += _consistency_blocks(results)
    blocks += _figure_blocks(results)
    blocks += _config_blocks(results)
    return blocks


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html, results.json and the CSV files into ``out_dir``.

    Figures named in ``results["figures"]`` must already be in ``out_dir``; the HTML embeds them.
    Returns the paths written, by name.
    """
    out = Path(out_dir)
    blocks = build_report(results)
    written = {"results.json": write_json(out / "results.json", results)}
    for file, key in CSV_FILES.items():
        rows = results.get(key, [])
        columns = list(CSV_COLUMNS.get(key, []))
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        written[file] = write_csv(out / file, rows, columns)
    written["report.md"] = write_text(out / "report.md", to_markdown(blocks))
    title = blocks[0].text if isinstance(blocks[0], Heading) else "dermsr study"
    written["report.html"] = write_text(
        out / "report.html", to_html(blocks, title=title, load_figure=lambda p: (out / p).read_bytes())
    )
    return written
