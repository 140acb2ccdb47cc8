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
    _ms,
    _pairwise_blocks,
    _speed_rows,
    _timing_blocks,
    _truth_blocks,
    fmt_metric,
)


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
