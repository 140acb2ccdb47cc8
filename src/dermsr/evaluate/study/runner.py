"""Running a study: each model on each runtime on each image (cached, resumable), then the speed cells."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ...export.cache import file_sha256
from ...imaging import nchw_to_hwc as _hwc
from ...machine import load_average as _load_average
from .collect import _assemble, _Collected
from .comparison import pick_reference
from .config import BICUBIC, BackendRun, StudyConfig
from .figures import draw_model_figure, draw_runtime_figures
from .runs import cache_key, cache_load, cache_store, run_backend
from .scoring import _Scorer, bicubic_baseline, ground_truth


def resolve_backends(requested: Sequence[str] | None) -> tuple[list[str], list[dict[str, str]]]:
    """Split the requested backends into (runnable, skipped-with-reason).

    ``None`` means every registered backend. A name that is not registered is an
    :class:`~dermsr.errors.UnknownNameError` (a typo should stop the study, not hide in it);
    a registered backend that cannot run here is skipped, with its reason.
    """
    from ...enhance.registry import backend_names, get_backend

    names = list(backend_names()) if requested is None else list(dict.fromkeys(requested))
    if not names:
        raise InputError("no backends requested; expected names like torch,onnxruntime,ncnn,executorch")
    runnable: list[str] = []
    skipped: list[dict[str, str]] = []
    for name in names:
        backend = get_backend(name)  # raises UnknownNameError with the known names
        try:
            a = backend.availability()
        except Exception as exc:  # a plugin that cannot even say why
            skipped.append({"backend": name, "reason": f"availability check failed: {exc}"})
            continue
        if a.available:
            runnable.append(name)
        else:
            skipped.append({"backend": name, "reason": a.reason or "unavailable"})
    return runnable, skipped

def _unique_names(stems: Sequence[str]) -> list[str]:
    """The names, numbered where they repeat (file stems of images, names of models).

    >>> _unique_names(["a", "b", "a", "a"])
    ['a', 'b', 'a-2', 'a-3']
    """
    names: list[str] = []
    for stem in stems:
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names

# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------
def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", disable=not enabled, file=sys.stderr, desc="dermsr study")

def _resolve_models(specs: Sequence[Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Load every model (a name or file that does not load stops the study: a typo should not
    hide); the same weights twice are studied once; labels are unique names."""
    from ...models import load_model

    models: list[tuple[str, Any]] = []
    notes: list[str] = []
    seen: dict[str, str] = {}
    for spec in specs:
        model = load_model(spec)
        if model.sha256 in seen:
            if spec is not None and str(getattr(spec, "name", spec)) != seen[model.sha256]:
                notes.append(f"model {getattr(spec, 'name', spec)} has the same weights as `{seen[model.sha256]}`; "
                             "studied once")
            continue
        label = _unique_names([*(label for label, _ in models), model.name])[-1]
        seen[model.sha256] = label
        models.append((label, model))
    scales = {m.scale for _, m in models}
    if len(scales) > 1:
        raise InputError("models of different scales cannot share a ground truth: "
                         + ", ".join(f"{label} ×{m.scale}" for label, m in models))
    return models, notes

def run_study(out: str | os.PathLike[str], config: StudyConfig | None = None, **options: Any) -> dict[str, Any]:
    """Run the study, write the report into ``out`` and return the results (as in results.json).

    ``options`` override :class:`StudyConfig` fields, e.g. ``run_study("out", runs=2)``.
    """
    from ...degrade import Degrader
    from ...io import read_image
    from ..report import write_report

    wall0 = time.perf_counter()
    load_before = _load_average()
    cfg = config or StudyConfig()
    if options:
        cfg = replace(cfg, **options)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    if cfg.images:
        paths = [Path(p) for p in cfg.images]
    else:
        from ...data import sample_images

        paths = sample_images()
    if not paths:
        raise InputError("no images to study")
    names = _unique_names([p.stem or "image" for p in paths])
    backends, skipped = resolve_backends(cfg.backends)
    if not backends:
        raise BackendUnavailableError(
            "none of the requested backends can run here: "
            + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
        )
    models, notes = _resolve_models(cfg.model_specs)
    scale = models[0][1].scale
    degrader = Degrader.preset("thesis", size=cfg.size)
    scorer = _Scorer(cfg.lpips_backbone)
    repeats = cfg.n_repeats

    cache = out_dir / "cache"
    figures: list[dict[str, Any]] = []
    image_rows: list[dict[str, Any]] = []
    runs: list[BackendRun] = []
    pairwise: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    dead: dict[tuple[str, str], BackendRun] = {}  # (model, runtime) that cannot load: not retried

    per_image = 2 + len(models) * (len(backends) + (1 if cfg.figures else 0)) + (1 if cfg.figures else 0)
    bar = _progress(len(paths) * per_image, cfg.progress)
    try:
        for path, name in zip(paths, names, strict=True):
            bar.set_postfix_str(f"{name}: degrade")
            image = read_image(path)
            image_sha = file_sha256(path)
            deg = degrader.apply(image, seed=cfg.seed)
            x = np.ascontiguousarray(deg.lr, dtype=np.float32)
            out_hw = (x.shape[2] * scale, x.shape[3] * scale)
            gt = ground_truth(deg.hr, out_hw)
            baseline = bicubic_baseline(x, scale)
            image_rows.append({
                "image": name, "path": str(path), "sha256": image_sha,
                "height": int(image.shape[0]), "width": int(image.shape[1]),
                "hr_size": [int(deg.hr.shape[0]), int(deg.hr.shape[1])],
                "lr_shape": list(x.shape), "output_size": list(out_hw),
            })
            bar.update(1)

            outputs: dict[str, dict[str, np.ndarray]] = {}
            for label, model in models:
                outputs[label] = {}
                for backend in backends:
                    where = f"{name}: {label} on {backend}"
                    bar.set_postfix_str(where)
                    run = dead.get((label, backend))
                    if run is not None:
                        run = replace(run, image=name, errors=[], cached=False)
                    else:
                        key = cache_key({"image": image_sha, "backend": backend, "model": model.sha256,
                                         "degrader": degrader.to_dict(), "seed": cfg.seed, "runs": cfg.runs,
                                         "repeats": repeats, "threads": cfg.threads})
                        run = cache_load(cache, key, backend, name, label) if cfg.resume else None
                        if run is None:
                            run = run_backend(backend, model, x, runs=cfg.runs, repeats=repeats,
                                              threads=cfg.threads, image=name, label=label,
                                              progress=lambda step, w=where: bar.set_postfix_str(f"{w}: {step}"))
                            if run.error is None and run.unsupported is None:
                                cache_store(cache, key, run)
                        if run.unsupported is not None or (run.error and run.error.startswith("could not load")):
                            dead[(label, backend)] = run
                    runs.append(run)
                    if run.output is not None:
                        outputs[label][backend] = _hwc(run.output)
                    bar.update(1)

            bar.set_postfix_str(f"{name}: metrics")
            truth.append({"image": name, "method": "ground truth", "model": None, "backend": None,
                          "sharpness": scorer.sharpness(gt)})
            for label, mine in outputs.items():
                for a, b in itertools.combinations(mine, 2):
                    pairwise.append({"image": name, "model": label, "a": a, "b": b, **scorer.compare(mine[a], mine[b])})
                for backend, y in mine.items():
                    truth.append({"image": name, "method": label, "model": label, "backend": backend,
                                  **scorer.compare(y, gt), "sharpness": scorer.sharpness(y)})
            truth.append({"image": name, "method": BICUBIC, "model": None, "backend": None,
                          **scorer.compare(baseline, gt), "sharpness": scorer.sharpness(baseline)})
            bar.update(1)

            if cfg.figures:
                chosen = {}
                for label, mine in outputs.items():
                    bar.set_postfix_str(f"{name}: figures of {label}")
                    ref = pick_reference(mine, cfg.reference)
                    if ref is not None:
                        chosen[label] = (ref, mine[ref])
                        figures.extend(draw_runtime_figures(out_dir, name, _hwc(x), gt, baseline, mine, ref,
                                                            cfg.dpi, label))
                    bar.update(1)
                bar.set_postfix_str(f"{name}: figure of the models")
                figures.extend(draw_model_figure(out_dir, name, _hwc(x), gt, baseline, chosen, cfg.dpi))
                bar.update(1)
    finally:
        bar.close()

    if any(r.cached for r in runs):
        n = sum(r.cached for r in runs)
        notes.append(
            f"{n} of {len(runs)} model × runtime × image results were loaded from {cache} (a resumed "
            "study); their timings come from the run that computed them. Delete that folder, or "
            "pass --no-resume, to measure everything again."
        )
    speed = _measure_speed(cfg, models, backends, runs) if cfg.speed else []
    collected = _Collected(models=models, degrader=degrader, scorer=scorer, backends=backends, skipped=skipped,
                           images=image_rows, runs=runs, pairwise=pairwise, truth=truth, figures=figures,
                           notes=notes, load_before=load_before, speed=speed)
    results = _assemble(cfg, out_dir, collected)
    results["wall_time_s"] = time.perf_counter() - wall0
    write_report(results, out_dir)
    return results

def _measure_speed(cfg: StudyConfig, models: Sequence[tuple[str, Any]], backends: Sequence[str],
                   runs: Sequence[BackendRun]) -> list[dict[str, Any]]:
    """Each model on each runtime where it produced output, timed by ``dermsr bench`` in a fresh process."""
    from ...bench import run_benchmarks

    cells = [(label, model, b) for label, model in models for b in backends
             if any(r.model == label and r.backend == b and r.output is not None for r in runs)]
    speed: list[dict[str, Any]] = []
    bar = _progress(len(cells), cfg.progress)
    try:
        for label, model, b in cells:
            bar.set_postfix_str(f"speed: {label} on {b}, in a fresh process")
            res = run_benchmarks([b], [(cfg.size, cfg.size)], model=model, repeat=cfg.runs, warmup=1,
                                 threads=cfg.threads, tile=None, raw=False)[0]
            speed.append({**res.to_dict(), "model": label})
            bar.update(1)
    finally:
        bar.close()
    return speed
