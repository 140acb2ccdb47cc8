"""What a study measured, its figures, and the one place it becomes JSON-ready results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...bench import summarise_timings
from ...machine import load_average as _load_average
from ...machine import machine_info
from .config import BackendRun, StudyConfig, _dermsr_version, study_command
from .scoring import _sane_range, enhancement_verdict


def _runtime_versions() -> list[dict[str, Any]]:
    from ...enhance.registry import available

    return [
        {"name": a.name, "available": a.available, "version": a.version, "reason": a.reason}
        for a in available()
    ]

def _draw_figures(out_dir: Path, name: str, lr: np.ndarray, gt: np.ndarray, baseline: np.ndarray,
                  outputs: dict[str, np.ndarray], reference: str, dpi: int) -> list[dict[str, Any]]:
    """Histograms, difference maps against ``reference`` and the qualitative grid, as PNGs."""
    from .. import visual

    made: list[dict[str, Any]] = []

    def save(fig: Any, kind: str, caption: str, backend: str | None = None) -> None:
        file = f"figures/{name}-{kind}{'-' + backend if backend else ''}.png"
        visual.save_figure(fig, out_dir / file, dpi=dpi)
        made.append({"kind": kind, "image": name, "backend": backend, "file": file, "caption": caption})

    images = {"ground truth": gt, **outputs, "bicubic": baseline}
    save(visual.histogram_figure(visual.intensity_histograms(images), title=f"{name}: grey-level histograms"),
         "histogram", f"{name}: grey-level intensity histograms of the ground truth, every runtime's output "
         "and the bicubic baseline")
    if reference in outputs:
        for backend, y in outputs.items():
            if backend == reference:
                continue
            # colour scale up to this pair's largest difference, so sub-grey-level differences
            # show their pattern; the caption and the bar give the size
            top = float(np.abs(outputs[reference] - y).max()) * 255.0
            save(visual.difference_figure(outputs[reference], y, vmax=top if top > 0 else 1.0,
                                          title=f"{name}: |{backend} − {reference}|"),
                 "diff", f"{name}: absolute difference {backend} vs {reference}, largest over channels; "
                 f"the colour scale runs from 0 to the largest difference, {top:.3g} grey levels of 255"
                 + (" (invisible in an 8-bit image)" if top < 0.5 else ""), backend)
    save(visual.qualitative_grid(lr, {**outputs, "bicubic": baseline}, gt),
         "grid", f"{name}: degraded input, every runtime's output, the bicubic baseline and the ground truth "
         "(HR reference), with an enlarged central crop below")
    return made

def _auto_backend() -> str | None:
    """The runtime ``backend="auto"`` resolves to here (None if none is installed)."""
    from ...enhance.enhancer import resolve_backend
    from ...errors import DermsrError

    try:
        return resolve_backend("auto")
    except DermsrError:
        return None


@dataclass
class _Collected:
    """Everything a study measured, before it becomes results.json."""

    model: Any
    degrader: Any
    scorer: Any
    backends: list[str]
    skipped: list[dict[str, str]]
    images: list[dict[str, Any]]
    runs: list[BackendRun]
    pairwise: list[dict[str, Any]]
    truth: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    notes: list[str]
    load_before: float | None
    compare: list[str]
    reference: str
    speed: list[dict[str, Any]]

def _assemble(cfg: StudyConfig, out_dir: Path, c: _Collected) -> dict[str, Any]:
    """The study's results as JSON-ready data (the one place they become a dict)."""
    model, degrader, scorer, backends, skipped = c.model, c.degrader, c.scorer, c.backends, c.skipped
    image_rows, runs, pairwise, truth, figures, notes = c.images, c.runs, c.pairwise, c.truth, c.figures, c.notes
    run_backends = [b for b in backends if any(r.backend == b and r.output is not None for r in runs)]
    failed = []
    for b in backends:
        if b not in run_backends:
            errs = list(dict.fromkeys(e for r in runs if r.backend == b for e in ([r.error] if r.error else []) + r.errors))
            failed.append({"backend": b, "reason": "; ".join(errs) or "produced no output"})
    run_errors = [{"image": r.image, "backend": r.backend, "error": e} for r in runs for e in r.errors]
    timing = []
    for r in runs:
        timing.append({"image": r.image, "backend": r.backend, "init_s": r.init_s, "runs_s": list(r.runs_s),
                       **summarise_timings(r.runs_s), "cached": r.cached, "error": r.error,
                       "failed_runs": len(r.errors)})
    timing_summary = []
    for b in run_backends:
        mine = [r for r in runs if r.backend == b]
        pooled = [t for r in mine for t in r.runs_s]
        inits = [r.init_s for r in mine if r.init_s is not None]
        timing_summary.append({"backend": b, "init_s_mean": statistics.fmean(inits) if inits else None,
                               "init_s_first": inits[0] if inits else None, **summarise_timings(pooled)})
    verdict_for = cfg.reference if cfg.reference in run_backends else (run_backends or [""])[0]
    consistency = [{"image": r.image, "backend": r.backend, **r.consistency} for r in runs if r.consistency]
    return {
        "schema": "dermsr.study/1",
        "config": {
            "command": study_command(cfg, out_dir),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dermsr_version": _dermsr_version(),
            "seed": cfg.seed,
            "runs": cfg.runs,
            "repeats": cfg.n_repeats,
            "threads": cfg.threads,
            "reference_backend": cfg.reference,
            "backends_requested": list(cfg.backends) if cfg.backends is not None else "all registered",
            "backends_run": run_backends,
            "backends_skipped": skipped,
            "backends_failed": failed,
            "images": image_rows,
            "model": model.info(),
            "degrader": degrader.to_dict(),
            "ground_truth": "central square crop (the degrader's hr) resized to the output size with cv2.INTER_AREA",
            "baseline": "low-resolution input resized ×scale with cv2.INTER_CUBIC, clipped to [0, 1]",
            "timing": "initialisation = Enhancer construction + runtime load + first run; then `runs` calls of "
                      "Enhancer.run on the prepared float32 NCHW tensor, each timed with time.perf_counter, "
                      "all runtimes in this one process",
            "speed": "dermsr bench's method: each runtime in a fresh process, initialisation, one warm-up run, "
                     "then `runs` timed Enhancer.run calls on a size×size input; median",
            "compare_models": c.compare,
            "compare_backend": c.reference,
            "auto_backend": _auto_backend(),
            "consistency_range": list(_sane_range()),
            "lpips": {"computed": scorer.has_lpips, "backbone": scorer.lpips_source, "reason": scorer.lpips_error},
            "runtimes": _runtime_versions(),
            "machine": {**machine_info(), "load_average_start": c.load_before,
                        "load_average_end": _load_average()},
        },
        "run_errors": run_errors,
        "timing": timing,
        "timing_summary": timing_summary,
        "speed": c.speed,
        "pairwise": pairwise,
        "ground_truth": truth,
        "consistency": consistency,
        "verdict": enhancement_verdict(truth, verdict_for),
        "verdicts": {b: enhancement_verdict(truth, b) for b in run_backends},
        "model_verdicts": {m: enhancement_verdict(truth, m) for m in c.compare},
        "figures": figures,
        "notes": notes,
    }
