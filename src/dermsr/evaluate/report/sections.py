"""The study report's sections, each a function of the results that returns blocks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..metric_info import FIDELITY_METRICS, METRIC_INFO
from .blocks import Block, Bullets, Callout, Code, Figure, Heading, Paragraph, Table, fmt, json_safe

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
            Table(["runtime", "version", "median (ms)", "min (ms)", "max (ms)", "initialisation (ms)"],
                  [[f"`{s['backend']}`", versions.get(s["backend"]) or s.get("runtime_version") or "n/a",
                    fmt(s.get("median_ms"), ".1f"), fmt(s.get("min_ms"), ".1f"), fmt(s.get("max_ms"), ".1f"),
                    fmt(s.get("init_ms"), ".0f")] for s in speed],
                  numeric=(2, 3, 4, 5)),
        ]
        fastest = min(speed, key=lambda s: s["median_ms"])
        blocks.append(Paragraph(
            f"Fastest on this machine: **{fastest['backend']}** ({fmt(fastest['median_ms'], '.1f')} ms median). "
            "Which runtime is fastest depends on the machine; a phone can rank them differently."
            + (f" `backend=\"auto\"` (the default) picks **{auto}** here, from the measured order "
               "`dermsr.enhance.enhancer.AUTO_ORDER`." if (auto := results["config"].get("auto_backend")) else "")
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
