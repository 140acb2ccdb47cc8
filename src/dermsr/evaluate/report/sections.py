"""The study report's sections, each a function of the results that returns blocks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..metric_info import FIDELITY_METRICS, METRIC_INFO
from .blocks import Block, Bullets, Callout, Code, Figure, Heading, Paragraph, Table, fmt, json_safe
from .records import ModelComparison

# ---------------------------------------------------------------------------------------------
# the study report
# ---------------------------------------------------------------------------------------------
#: How each metric is shown in tables (results.json and the CSVs keep full precision).
METRIC_FORMAT = {m.name: m.fmt for m in METRIC_INFO.values()}

METRIC_LABEL = {m.name: m.label for m in METRIC_INFO.values()}

#: The thesis's table numbers for the pairwise metrics.
THESIS_TABLE = {"mse": 2, "psnr": 3, "ssim": 4, "lpips": 5}

#: CSV files written beside the report and the rows (results.json keys) they hold; models.csv
#: holds the rows of :meth:`ModelComparison.csv_rows <dermsr.evaluate.report.records.ModelComparison.csv_rows>`.
CSV_FILES = {
    "models.csv": "model_comparison",
    "timing.csv": "timing",
    "timing_summary.csv": "timing_summary",
    "pairwise.csv": "pairwise",
    "ground_truth.csv": "ground_truth",
    "consistency.csv": "consistency",
}

#: Leading columns of each CSV (any further keys follow), so an empty table still has a header.
CSV_COLUMNS = {
    "timing": ["image", "model", "backend", "init_s", "n", "mean_s", "std_s", "median_s", "min_s", "max_s",
               "runs_s"],
    "timing_summary": ["model", "backend", "init_s_first", "init_s_mean", "n", "mean_s", "std_s", "median_s",
                       "min_s", "max_s"],
    "pairwise": ["image", "model", "a", "b", *FIDELITY_METRICS, "max_abs", "mean_abs"],
    "ground_truth": ["image", "method", "model", "backend", *FIDELITY_METRICS, "max_abs", "mean_abs", "sharpness"],
    "consistency": ["image", "model", "backend", "runs", "verdict", "bit_identical", "max_abs_dev", "nonfinite",
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

def _models(results: Mapping[str, Any]) -> list[str]:
    """The models' labels, the main one first."""
    return [m["label"] for m in results["config"]["models"]]

def _fastest_line(results: Mapping[str, Any]) -> str:
    """"Fastest on this machine: **runtime** for `model` (… ms median); …", one clause per model."""
    c = ModelComparison.from_results(results)
    what = "median" if c.fresh_speed else "in-process median"
    parts = [f"**{f.backend}** for `{m.label}` ({fmt(f.ms(c.fresh_speed), '.1f')} ms {what})"
             for m in c.models if (f := m.fastest(c.fresh_speed)) is not None]
    if not parts:
        return ""
    return ("Fastest on this machine: " + "; ".join(parts) + ". Which runtime is fastest depends on the "
            "machine; a phone can rank them differently.")

def _timing_blocks(results: Mapping[str, Any]) -> list[Block]:
    versions = {r["name"]: r.get("version") for r in results["config"]["runtimes"]}
    summary = results["timing_summary"]
    speed = _speed_rows(results)
    runs = results["config"]["runs"]
    blocks: list[Block] = [Heading(2, "1. Inference time (thesis Table 1)", "timing")]
    if speed:
        size = f"{speed[0]['width']}×{speed[0]['height']}"
        blocks += [
            Paragraph(
                f"Measured as `dermsr bench` measures: each model on each runtime in a fresh process (so no "
                f"other runtime's thread pool competes), initialisation (load, any export, first run), one "
                f"warm-up run, then {runs} timed `Enhancer.run` calls on a {size} input; the median is the "
                f"figure to compare. The same numbers come from `dermsr bench --model MODEL --sizes "
                f"{speed[0]['width']} --repeat {runs} --no-raw`."
            ),
            Table(["model", "runtime", "version", "median (ms)", "min (ms)", "max (ms)", "initialisation (ms)"],
                  [[f"`{s['model']}`", f"`{s['backend']}`",
                    versions.get(s["backend"]) or s.get("runtime_version") or "n/a",
                    fmt(s.get("median_ms"), ".1f"), fmt(s.get("min_ms"), ".1f"), fmt(s.get("max_ms"), ".1f"),
                    fmt(s.get("init_ms"), ".0f")] for s in speed],
                  numeric=(3, 4, 5, 6)),
        ]
        auto = results["config"].get("auto_backend")
        blocks.append(Paragraph(
            _fastest_line(results)
            + (f" `backend=\"auto\"` (the default) picks **{auto}** here, from the measured order "
               "`dermsr.enhance.enhancer.AUTO_ORDER`." if auto else "")
        ))
    rows = [[
        f"`{s['model']}`", f"`{s['backend']}`", versions.get(s["backend"]) or "n/a", fmt(s.get("init_s_first"), ".3f"),
        f"{_ms(s.get('mean_s'))} ± {_ms(s.get('std_s'))}", _ms(s.get("median_s")),
        _ms(s.get("min_s")), str(s.get("n", 0)),
    ] for s in summary]
    blocks += [
        Paragraph(
            ("In-process timings, the thesis's protocol: inference only" if speed else "Inference only")
            + f", each of the {runs} timed calls of `Enhancer.run` on the "
            "prepared float32 NCHW tensor of each image, after one warm-up call, with every runtime loaded "
            "in this one process (their thread pools compete, so these run slower than the fresh-process "
            "figures above). Initialisation (runtime load, any model export or compilation, and the first run) is "
            "timed separately; for the first image it includes a one-time model conversion when the "
            "runtime's artifact cache is cold. Pooled over all images; ± is the sample standard deviation."
        ),
        Table(["model", "runtime", "version", "initialisation (s, first image)", "inference mean ± std (ms)",
               "median (ms)", "min (ms)", "runs"], rows, numeric=(3, 4, 5, 6, 7)),
    ]
    per = [[
        t["image"], f"`{t['model']}`", f"`{t['backend']}`", fmt(t.get("init_s"), ".3f"),
        f"{_ms(t.get('mean_s'))} ± {_ms(t.get('std_s'))}", _ms(t.get("median_s")),
        " ".join(_ms(v) for v in t.get("runs_s", [])) or "n/a",
    ] for t in results["timing"]]
    blocks.append(Table(["image", "model", "runtime", "initialisation (s)", "mean ± std (ms)", "median (ms)",
                         "every run (ms)"], per, caption="Per image", numeric=(3, 4, 5)))
    if not speed and _fastest_line(results):
        blocks.append(Paragraph(_fastest_line(results)))
    return blocks

def _pairwise_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = results["pairwise"]
    images = _images(results)
    blocks: list[Block] = [Heading(2, "2. Agreement between runtimes (thesis Tables 2-5)", "pairwise")]
    if not rows:
        blocks.append(Callout("note", "No model produced output on two runtimes, so there is nothing to compare."))
        return blocks
    blocks.append(Paragraph(
        "Every pair of runtimes, on the same degraded input"
        + (", for each model" if len(_models(results)) > 1 else "")
        + ": identical outputs give MSE 0, PSNR inf, SSIM 1 and LPIPS 0. Outputs are the clamped [0, 1] "
        "images `Enhancer.run` returns."
    ))
    lpips_ok = results["config"]["lpips"]["computed"]
    if not lpips_ok:
        blocks.append(Callout("warning", "LPIPS (thesis Table 5) was **not computed**: " + _lpips_how(results)))
    several = len(_models(results)) > 1
    for model in _models(results):
        mine = [r for r in rows if r.get("model") == model]
        if not mine:
            if several:
                blocks.append(Paragraph(f"`{model}` produced output on fewer than two runtimes: nothing to compare."))
            continue
        if several:
            blocks.append(Heading(3, f"`{model}`"))
        pairs = list(dict.fromkeys((r["a"], r["b"]) for r in mine))
        for m in (*METRICS_ORDER, "max_abs"):
            if m == "lpips" and not lpips_ok:
                continue
            table_rows = []
            for a, b in pairs:
                vals = {r["image"]: r.get(m) for r in mine if (r["a"], r["b"]) == (a, b)}
                table_rows.append([f"`{a}` vs `{b}`", *(fmt_metric(m, vals.get(i)) for i in images),
                                   fmt_metric(m, _mean(vals.values()))])
            caption = (f"Thesis Table {THESIS_TABLE[m]}: {METRIC_LABEL[m]}" if m in THESIS_TABLE
                       else f"{METRIC_LABEL[m]} ({METRIC_INFO[m].description}; not in the thesis)")
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

def _consistency_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = results["consistency"]
    lo, hi = results["config"].get("consistency_range", (None, None))
    bound = f"[{fmt(lo, 'g')}, {fmt(hi, 'g')}]"
    repeats = results["config"]["repeats"]
    blocks: list[Block] = [Heading(2, "4. Repeated-run consistency", "consistency")]
    if not repeats:
        blocks.append(Paragraph("Skipped (`--repeats 0`): no runtime ran the same input again."))
        return blocks
    blocks.append(Paragraph(
        f"After the timed runs, each runtime ran the same input {repeats} more "
        "times through its raw session (before dermsr's output check and clamping), as the thesis's "
        f"repeated runs did. Each output is checked for non-finite values, values outside {bound} "
        "(beyond any overshoot of [0, 1] the model shows on real inputs; the bound `Enhancer.run` enforces), extreme "
        "values (|v| > 1000), blank images and exceptions, and compared with the first run. The "
        "thesis's ExecuTorch app sometimes returned values like 5.6e19 or all-black images."
    ))
    table = [[
        f"`{r.get('model')}`", f"`{r['backend']}`", r["image"], str(r.get("runs", "n/a")), r.get("verdict", "n/a"),
        fmt(r.get("bit_identical")), fmt(r.get("max_abs_dev"), ".3e"), str(r.get("nonfinite", "n/a")),
        str(r.get("out_of_range", "n/a")), str(r.get("extreme", "n/a")), str(r.get("blank", "n/a")),
        str(r.get("failures", "n/a")),
    ] for r in rows]
    blocks.append(Table(["model", "runtime", "image", "runs", "verdict", "bit-identical", "max deviation",
                         "non-finite values", f"values outside {bound}", "extreme values", "blank runs",
                         "failed runs"], table, numeric=(3, 6, 7, 8, 9, 10, 11)))
    bad = [r for r in rows if r.get("verdict") == "corrupted"]
    if bad:
        detail = "; ".join(f"{r['backend']} on {r['image']} (`{r.get('model')}`): {r.get('problems') or 'corrupted'}"
                           for r in bad)
        blocks.append(Callout("warning", f"**Corrupted or failed runs**: {detail}"))
    elif rows:
        unstable = sorted({f"{r['backend']} (`{r.get('model')}`)" for r in rows if r.get("bit_identical") is False})
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
    blocks.append(Paragraph("The models side by side on the same crop are in section 3."))
    titles = {"grid": "Qualitative comparison, each model on every runtime",
              "histogram": "Grey-level histograms (thesis figures)",
              "diff": "Difference maps against each model's reference runtime (thesis figures)"}
    for kind in ("grid", "histogram", "diff"):
        mine = [f for f in figs if f["kind"] == kind]
        if mine:
            blocks.append(Heading(3, titles[kind]))
            blocks.extend(Figure(f["file"], f["caption"]) for f in mine)
    return blocks

def _config_blocks(results: Mapping[str, Any]) -> list[Block]:
    cfg = results["config"]
    mach = cfg["machine"]
    blocks: list[Block] = [
        Heading(2, "Configuration", "configuration"),
        Bullets([
            f"dermsr {cfg['dermsr_version']}, run on {cfg['date']}; wall time {fmt(results.get('wall_time_s'), '.1f')} s",
            f"machine: {mach['cpu_model']}, {mach['logical_cores']} logical cores "
            f"({mach['usable_cores']} usable), {mach['platform']}, Python {mach['python']}; 1-minute load "
            f"average {fmt(mach.get('load_average_start'), '.1f')} at the start, "
            f"{fmt(mach.get('load_average_end'), '.1f')} at the end",
            *(_model_line(m) for m in cfg["models"]),
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

def _model_line(m: Mapping[str, Any]) -> str:
    convs = f", {m['num_conv']} body convolutions" if m.get("num_conv") is not None else ""
    return (f"model `{m['label']}`: {m.get('architecture', 'unknown architecture')}, ×{m['scale']}{convs}, "
            f"{m['num_params']:,} parameters, sha256 `{m['sha256'][:16]}…`; {m.get('source') or 'no source given'}")

def _busy(machine: Mapping[str, Any]) -> str | None:
    """A warning when other work competed for the CPU (timings then overstate inference time)."""
    loads = [v for v in (machine.get("load_average_start"), machine.get("load_average_end")) if v is not None]
    cores = machine.get("usable_cores") or machine.get("logical_cores")
    if not loads or not cores or max(loads) <= cores:
        return None
    return (f"The machine was busy: 1-minute load average up to {max(loads):.1f} on {cores} usable core(s). "
            "Other processes competed for the CPU, so the inference times overstate what these runtimes "
            "take on an idle machine; their ranking may change too.")
