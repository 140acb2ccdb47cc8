"""Section 3 of the study report: every model against the ground truth and the bicubic baseline,
side by side (scores, wins per image, speed, the same crop), then every runtime's output.

It reads the models through :class:`~dermsr.evaluate.report.records.ModelComparison` (results'
``model_comparison``) and the per-image scores from results' ``ground_truth`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..metric_info import METRIC_INFO, better
from .blocks import Block, Bullets, Callout, Figure, Heading, Paragraph, Table, fmt
from .records import BASELINE, NOT_APPLICABLE, OK, ModelComparison, ModelSummary
from .sections import METRIC_LABEL, _images, _lpips_how, _mean, fmt_metric


def _direction(metric: str) -> str:
    return "higher" if METRIC_INFO[metric].higher_is_better else "lower"


def _verdict_blocks(m: ModelSummary) -> list[Block]:
    if not m.scores:
        return [Callout("note", f"`{m.label}` produced no output on any runtime, so it could not be judged.")]
    who = f"`{m.label}` (on `{m.reference}`)"
    better_on = [METRIC_LABEL[k] for k, s in m.scores.items() if s.better]
    worse_on = [METRIC_LABEL[k] for k, s in m.scores.items() if not s.better]
    headline = {
        "helps": f"**Yes: on these images the enhancement helps.** {who} beats the bicubic baseline "
                 "on every metric against the ground truth.",
        "does not help": f"**No: on these images the enhancement does not help.** {who} is worse than "
                         "plain bicubic upscaling on every metric against the ground truth.",
        "mixed": "**Partly: on these images the enhancement helps on some metrics and hurts on others.** "
                 f"Against the ground truth, {who} is better than bicubic on {', '.join(better_on)} and worse "
                 f"on {', '.join(worse_on)}.",
    }.get(m.verdict, "The comparison with the baseline is inconclusive.")
    parts = [
        f"{METRIC_LABEL[k]} {fmt_metric(k, s.mean)} vs {fmt_metric(k, s.baseline_mean)} "
        f"({'better' if s.better else 'worse'}; {_direction(k)} is better; wins on {s.wins} of {s.images} "
        f"image(s)) (mean over images, `{m.label}` vs bicubic)"
        for k, s in m.scores.items()
    ]
    return [Paragraph("Does the enhancement help? " + headline), Bullets(parts)]


def _best(metric: str, values: Sequence[Any]) -> Any:
    """The best of ``values`` (None where there is none)."""
    vals = [v for v in values if isinstance(v, (int, float))]
    if not vals or METRIC_INFO[metric].higher_is_better is None:
        return None
    best = vals[0]
    for v in vals[1:]:
        if better(metric, v, best):
            best = v
    return best


def _cell(metric: str, value: Any, best: Any) -> str:
    text = fmt_metric(metric, value)
    return f"**{text}**" if value is not None and best is not None and value == best else text


def _means_table(c: ModelComparison) -> Table:
    rows: list[list[str]] = []
    best = {k: _best(k, [c.baseline.get(k), *(m.scores[k].mean for m in c.models if k in m.scores)])
            for k in c.metrics}
    rows.append(["**bicubic baseline**", "—", *(_cell(k, c.baseline.get(k), best[k]) for k in c.metrics),
                 fmt_metric("sharpness", c.baseline_sharpness), "baseline"])
    for m in c.models:
        rows.append([f"`{m.label}`", f"`{m.reference}`" if m.reference else "n/a",
                     *(_cell(k, m.scores[k].mean if k in m.scores else None, best[k]) for k in c.metrics),
                     fmt_metric("sharpness", m.sharpness), m.verdict])
    rows.append(["ground truth", "—", *("—" for _ in c.metrics), fmt_metric("sharpness", c.truth_sharpness), "—"])
    return Table(["method", "runtime", *(METRIC_LABEL[k] for k in c.metrics), "sharpness", "verdict"], rows,
                 caption=f"Mean over {len(c.images)} image(s), each model on its reference runtime "
                 "(best in bold)", numeric=tuple(range(2, len(c.metrics) + 3)))


def _wins_table(c: ModelComparison) -> Table:
    rows = [[f"`{m.label}`", *(f"{m.scores[k].wins} of {m.scores[k].images}" if k in m.scores else "n/a"
                               for k in c.metrics)] for m in c.models]
    return Table(["model", *(METRIC_LABEL[k] for k in c.metrics)], rows,
                 caption="Images on which each model beats bicubic", numeric=tuple(range(1, len(c.metrics) + 1)))


def _per_image_tables(results: Mapping[str, Any], c: ModelComparison) -> list[Block]:
    rows = results["ground_truth"]
    base = {r["image"]: r for r in rows if r["method"] == BASELINE}
    mine = {(r["image"], m.label): r for m in c.models for r in rows
            if r["method"] == m.label and r.get("backend") == m.reference}
    blocks: list[Block] = []
    for k in c.metrics:
        table = []
        for image in c.images:
            values = [base.get(image, {}).get(k), *(mine.get((image, m.label), {}).get(k) for m in c.models)]
            best = _best(k, values)
            table.append([image, *(_cell(k, v, best) for v in values)])
        blocks.append(Table(["image", "bicubic", *(f"`{m.label}`" for m in c.models)], table,
                            caption=f"{METRIC_LABEL[k]} per image ({_direction(k)} is better; best in bold)",
                            numeric=tuple(range(1, len(c.models) + 2))))
    return blocks


def _speed_table(c: ModelComparison, size: str) -> list[Block]:
    how = (f"`dermsr bench`'s median in a fresh process at {size}" if c.fresh_speed
           else "median of the in-process timed runs (`--no-speed`: no fresh-process timing)")
    rows = []
    for m in c.models:
        fastest = m.fastest(c.fresh_speed)
        cells = []
        for b in c.runtimes:
            r = m.runtime(b)
            if r is None or r.status == OK:
                cells.append(fmt(r.ms(c.fresh_speed) if r else None, ".1f"))
            else:
                cells.append("not applicable" if r.status == NOT_APPLICABLE else "failed")
        rows.append([f"`{m.label}`", f"`{fastest.backend}`" if fastest else "n/a",
                     fmt(fastest.ms(c.fresh_speed) if fastest else None, ".1f"), *cells])
    return [Table(["model", "fastest runtime", "median there (ms)", *(f"`{b}` (ms)" for b in c.runtimes)], rows,
                  caption=f"Speed per model: {how}", numeric=tuple(range(2, len(c.runtimes) + 3)))]


def _every_runtime_tables(results: Mapping[str, Any], metrics: Sequence[str]) -> list[Block]:
    rows = results["ground_truth"]
    headers = [METRIC_LABEL[m] for m in metrics]
    keys = list(dict.fromkeys((r["method"], r.get("backend")) for r in rows))

    def label(method: str) -> str:
        return "bicubic baseline" if method == BASELINE else method

    mean_rows = []
    for method, backend in keys:
        mine = [r for r in rows if r["method"] == method and r.get("backend") == backend]
        truth = method == "ground truth"
        mean_rows.append([f"**{label(method)}**" if method == BASELINE else label(method), backend or "—",
                          *("—" if truth else fmt_metric(m, _mean(r.get(m) for r in mine)) for m in metrics),
                          fmt_metric("sharpness", _mean(r.get("sharpness") for r in mine))])
    per_rows = [[r["image"], label(r["method"]), r.get("backend") or "—",
                 *("—" if r["method"] == "ground truth" else fmt_metric(m, r.get(m)) for m in metrics),
                 fmt_metric("sharpness", r.get("sharpness"))] for r in rows]
    return [
        Heading(3, "Every runtime's output"),
        Table(["method", "runtime", *headers, "sharpness"], mean_rows, caption=f"Mean over {len(_images(results))} "
              "image(s)", numeric=tuple(range(2, len(metrics) + 3))),
        Table(["image", "method", "runtime", *headers, "sharpness"], per_rows, caption="Per image",
              numeric=tuple(range(3, len(metrics) + 4))),
    ]


def truth_blocks(results: Mapping[str, Any]) -> list[Block]:
    """Section 3: the models against the ground truth and bicubic, then every runtime's output."""
    c = ModelComparison.from_results(results)
    lpips_ok = results["config"]["lpips"]["computed"]
    blocks: list[Block] = [
        Heading(2, "3. Models against the ground truth (not in the thesis)", "ground-truth"),
        Paragraph(
            "The thesis compared runtimes only with each other, which says whether they agree but not "
            "whether the model helps. Here every output, and a bicubic ×scale upscale of the same "
            "low-resolution input, is scored against the ground truth: "
            f"{results['config']['ground_truth']}. Each model stands for itself through its output on its "
            f"reference runtime (`{results['config']['reference_backend']}` where it ran; the runtimes agree, "
            "section 2). Sharpness is the variance of the Laplacian of the grey image (higher is sharper; "
            "not a measure of fidelity: a model can be sharper than the ground truth by inventing detail)."
        ),
    ]
    for m in c.models:
        blocks.extend(_verdict_blocks(m))
    blocks.append(Heading(3, "The models side by side", "models"))
    blocks.append(_means_table(c))
    if c.models:
        blocks.append(_wins_table(c))
        blocks.extend(_per_image_tables(results, c))
        speed = [s for s in results.get("speed") or [] if s.get("status") == "ok"]
        size = f"{speed[0]['width']}×{speed[0]['height']}" if speed else ""
        blocks.extend(_speed_table(c, size))
    na = [f"`{m.label}` on `{r.backend}`: {r.reason}" for m in c.models for r in m.not_applicable]
    if na:
        blocks.append(Paragraph("Runtimes **not applicable** to a model (they cannot run its architecture; "
                                "left out of its comparisons, not failures):"))
        blocks.append(Bullets(na))
    figs = [f for f in results.get("figures", []) if f["kind"] == "models"]
    blocks.extend(Figure(f["file"], f["caption"]) for f in figs)
    blocks.extend(_every_runtime_tables(results, c.metrics))
    if not lpips_ok:
        blocks.append(Callout("warning", "LPIPS against the ground truth was **not computed**: " + _lpips_how(results)))
    return blocks
