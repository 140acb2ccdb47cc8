"""The study report as a whole: the summary at the top, every section, and the files written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .blocks import (
    Block,
    Bullets,
    Callout,
    Heading,
    Paragraph,
    fmt,
    to_html,
    to_markdown,
    write_csv,
    write_json,
    write_text,
)
from .model_section import truth_blocks
from .records import FAILED, NOT_APPLICABLE, ModelComparison
from .sections import (
    CSV_COLUMNS,
    CSV_FILES,
    METRIC_LABEL,
    _busy,
    _config_blocks,
    _consistency_blocks,
    _figure_blocks,
    _images,
    _lpips_how,
    _pairwise_blocks,
    _timing_blocks,
    fmt_metric,
)


def _model_callouts(c: ModelComparison) -> list[Block]:
    """Runtimes that did not run a model: not applicable (a note) or failed (a warning)."""
    blocks: list[Block] = []
    for m in c.models:
        for r in m.runtimes:
            if r.status == NOT_APPLICABLE:
                blocks.append(Callout("note", f"Runtime `{r.backend}` is **not applicable** to `{m.label}` (it "
                                      f"cannot run this architecture): {r.reason}"))
            elif r.status == FAILED:
                blocks.append(Callout("warning", f"Runtime `{r.backend}` **failed** for `{m.label}` and is missing "
                                      f"from its comparisons: {r.reason}"))
    return blocks

def _summary(results: Mapping[str, Any], c: ModelComparison) -> list[str]:
    summary = []
    for m in c.models:
        if m.scores:
            word = {"helps": "**helps**", "does not help": "**does not help**", "mixed": "**mixed**"}.get(
                m.verdict, "inconclusive")
            numbers = ", ".join(f"{METRIC_LABEL[k]} {fmt_metric(k, s.mean)} vs {fmt_metric(k, s.baseline_mean)}"
                                for k, s in m.scores.items() if k != "mse")
            summary.append(f"Model `{m.label}` against the ground truth vs bicubic: {word} (on `{m.reference}`: "
                           f"{numbers}; section 3)")
    if results["pairwise"]:
        worst = min(results["pairwise"], key=lambda r: r["psnr"])
        big = max(results["pairwise"], key=lambda r: r["max_abs"])
        summary.append(
            f"Runtime agreement: lowest pairwise PSNR {fmt_metric('psnr', worst['psnr'])} dB "
            f"(`{worst['a']}` vs `{worst['b']}`, `{worst['model']}`, {worst['image']}); largest pixel difference "
            f"{fmt_metric('max_abs', big['max_abs'])} (`{big['a']}` vs `{big['b']}`, `{big['model']}`). The thesis "
            "reported 34-45 dB."
        )
    timed = [(m, m.fastest(c.fresh_speed)) for m in c.models]
    if any(f is not None for _, f in timed):
        how = "fresh process, as dermsr bench" if c.fresh_speed else "in process"
        summary.append(f"Median inference time ({how}): " + "; ".join(
            f"`{m.label}` " + ", ".join(f"{r.backend} {fmt(r.ms(c.fresh_speed), '.1f')} ms" for r in m.runtimes
                                        if r.ms(c.fresh_speed) is not None)
            for m, f in timed if f is not None))
    if results["consistency"]:
        corrupt = [r for r in results["consistency"] if r.get("verdict") == "corrupted"]
        same = all(r.get("bit_identical") for r in results["consistency"])
        summary.append("Repeated runs: " + ("**corrupted or failed runs found** (section 4)" if corrupt else
                       "bit-identical on every runtime" if same else "no corruption; small run-to-run differences"))
    return summary

def build_report(results: Mapping[str, Any]) -> list[Block]:
    """The study report as blocks (see :func:`to_markdown` / :func:`to_html`)."""
    cfg = results["config"]
    run = cfg["backends_run"]
    images = _images(results)
    c = ModelComparison.from_results(results)
    labels = [m.label for m in c.models]
    blocks: list[Block] = [
        Heading(1, "dermsr study: " + " vs ".join(labels) + " on " + (", ".join(run) or "no runtime")),
        Paragraph(
            f"{len(images)} image(s) ({', '.join(images)}) degraded with the thesis pipeline, enhanced "
            f"×{cfg['model']['scale']} by " + ", ".join(f"`{m}`" for m in labels)
            + f" on {len(run)} runtime(s), compared with each other, with the ground truth and with a bicubic "
            f"baseline. dermsr {cfg['dermsr_version']}, {cfg['date']}, {cfg['machine']['cpu_model']} "
            f"({cfg['machine']['usable_cores']} cores); the study took {fmt(results.get('wall_time_s'), '.1f')} s."
        ),
    ]
    for s in cfg["backends_skipped"]:
        blocks.append(Callout("note", f"Runtime `{s['backend']}` was **skipped**: {s['reason']}"))
    blocks += _model_callouts(c)
    errors = results.get("run_errors", [])
    if errors:
        shown = "; ".join(f"{e['backend']} on {e['image']} (`{e['model']}`), {e['error']}" for e in errors[:10])
        more = f" (and {len(errors) - 10} more in results.json)" if len(errors) > 10 else ""
        blocks.append(Callout("warning", f"**{len(errors)} run(s) raised an error** (left out of the timings): {shown}{more}"))
    if not cfg["lpips"]["computed"]:
        blocks.append(Callout("warning", "LPIPS was **skipped**: " + _lpips_how(results)))
    for n in results.get("notes", []):
        blocks.append(Callout("note", n))
    busy = _busy(cfg["machine"])
    if busy:
        blocks.append(Callout("warning", busy))
    summary = _summary(results, c)
    if summary:
        blocks.append(Bullets(summary))
    blocks += _timing_blocks(results)
    blocks += _pairwise_blocks(results)
    blocks += truth_blocks(results)
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
        if key == "model_comparison":
            c = ModelComparison.from_results(results)
            rows, columns = c.csv_rows(), c.csv_columns()
        else:
            rows, columns = results.get(key, []), list(CSV_COLUMNS.get(key, []))
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        written[file] = write_csv(out / file, rows, columns)
    written["report.md"] = write_text(out / "report.md", to_markdown(blocks))
    title = blocks[0].text if isinstance(blocks[0], Heading) else "dermsr study"
    written["report.html"] = write_text(
        out / "report.html", to_html(blocks, title=title, load_figure=lambda p: (out / p).read_bytes())
    )
    return written
