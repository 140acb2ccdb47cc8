"""What a study measured, and the one place it becomes JSON-ready results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...bench import summarise_timings
from ...machine import load_average as _load_average
from ...machine import machine_info
from ..report.records import NOT_APPLICABLE
from .comparison import build_comparison, model_references, model_verdicts, runtime_status
from .config import BackendRun, StudyConfig, _dermsr_version, study_command
from .scoring import _sane_range


def _runtime_versions() -> list[dict[str, Any]]:
    from ...enhance.registry import available

    return [
        {"name": a.name, "available": a.available, "version": a.version, "reason": a.reason}
        for a in available()
    ]

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

    models: list[tuple[str, Any]]  # (label, Model), the main one first
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
    speed: list[dict[str, Any]]

def _assemble(cfg: StudyConfig, out_dir: Path, c: _Collected) -> dict[str, Any]:
    """The study's results as JSON-ready data (the one place they become a dict)."""
    runs, backends = c.runs, c.backends
    labels = [label for label, _ in c.models]
    run_backends = [b for b in backends if any(r.backend == b and r.output is not None for r in runs)]
    failed = []
    for b in backends:
        if b not in run_backends and not all(runtime_status(runs, m, b)[0] == NOT_APPLICABLE for m in labels):
            reasons = dict.fromkeys(runtime_status(runs, m, b)[1] or "" for m in labels)
            failed.append({"backend": b, "reason": "; ".join(r for r in reasons if r) or "produced no output"})
    run_errors = [{"image": r.image, "model": r.model, "backend": r.backend, "error": e} for r in runs for e in r.errors]
    timing = []
    for r in runs:
        if r.unsupported is None:
            timing.append({"image": r.image, "model": r.model, "backend": r.backend, "init_s": r.init_s,
                           "runs_s": list(r.runs_s), **summarise_timings(r.runs_s), "cached": r.cached,
                           "error": r.error, "failed_runs": len(r.errors)})
    timing_summary = []
    for m in labels:
        for b in backends:
            mine = [r for r in runs if r.model == m and r.backend == b and r.output is not None]
            if not mine:
                continue
            pooled = [t for r in mine for t in r.runs_s]
            inits = [r.init_s for r in mine if r.init_s is not None]
            timing_summary.append({"model": m, "backend": b, "init_s_mean": statistics.fmean(inits) if inits else None,
                                   "init_s_first": inits[0] if inits else None, **summarise_timings(pooled)})
    references = model_references(runs, labels, backends, cfg.reference)
    verdicts = model_verdicts(labels, c.truth, references)
    comparison = build_comparison(c.models, backends, runs, c.truth, c.speed, references,
                                  [im["image"] for im in c.images], verdicts)
    consistency = [{"image": r.image, "model": r.model, "backend": r.backend, **r.consistency}
                   for r in runs if r.consistency]
    main = c.models[0][1]
    return {
        "schema": "dermsr.study/2",
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
            "backends_skipped": c.skipped,
            "backends_failed": failed,
            "images": c.images,
            "model": main.info(),
            "models": [{"label": label, **m.info()} for label, m in c.models],
            "compare_models": labels[1:],
            "degrader": c.degrader.to_dict(),
            "ground_truth": "central square crop (the degrader's hr) resized to the output size with cv2.INTER_AREA",
            "baseline": "low-resolution input resized ×scale with cv2.INTER_CUBIC, clipped to [0, 1]",
            "timing": "initialisation = Enhancer construction + runtime load + first run; then `runs` calls of "
                      "Enhancer.run on the prepared float32 NCHW tensor, each timed with time.perf_counter, "
                      "every model and runtime in this one process",
            "speed": "dermsr bench's method: each model × runtime in a fresh process, initialisation, one warm-up "
                     "run, then `runs` timed Enhancer.run calls on a size×size input; median",
            "auto_backend": _auto_backend(),
            "consistency_range": list(_sane_range()),
            "lpips": {"computed": c.scorer.has_lpips, "backbone": c.scorer.lpips_source,
                      "reason": c.scorer.lpips_error},
            "runtimes": _runtime_versions(),
            "machine": {**machine_info(), "load_average_start": c.load_before,
                        "load_average_end": _load_average()},
        },
        "run_errors": run_errors,
        "timing": timing,
        "timing_summary": timing_summary,
        "speed": c.speed,
        "pairwise": c.pairwise,
        "ground_truth": c.truth,
        "consistency": consistency,
        "verdict": verdicts[labels[0]],
        "model_verdicts": verdicts,
        "model_comparison": comparison.to_dict(),
        "figures": c.figures,
        "notes": c.notes,
    }
