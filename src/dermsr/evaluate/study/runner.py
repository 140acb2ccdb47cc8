"""Running a study: each runtime on each image (cached, resumable), the compared models, the speed cells."""

from __future__ import annotations

import hashlib
import itertools
import json
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
from .collect import _assemble, _Collected, _draw_figures
from .config import _CACHE_VERSION, BICUBIC, BackendRun, StudyConfig, _dermsr_version
from .scoring import _sane_range, _Scorer, bicubic_baseline, consistency_row, ground_truth


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

def _image_names(paths: Sequence[Path]) -> list[str]:
    """Unique short names (file stems; numbered when stems repeat)."""
    names: list[str] = []
    for p in paths:
        stem = p.stem or "image"
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names

def run_backend(
    name: str,
    model: Any,
    x: np.ndarray,
    *,
    runs: int,
    repeats: int,
    threads: int | None,
    image: str = "",
) -> BackendRun:
    """Initialise ``name``, time ``runs`` inference-only calls of :meth:`Enhancer.run` on
    ``x`` after the first (warm-up) call, then make ``repeats`` raw session runs (unchecked,
    unclamped) for the consistency check."""
    from ...enhance import Enhancer

    result = BackendRun(name, image, None)
    t0 = time.perf_counter()
    try:
        enhancer = Enhancer(model, backend=name, threads=threads)
        enhancer.session  # noqa: B018 - loads the runtime (exporting/compiling the model if needed)
    except Exception as exc:  # a broken runtime must not stop the study; it is reported
        result.error = f"could not load: {type(exc).__name__}: {exc}"
        return result
    try:
        enhancer.run(x)  # the first run, part of initialisation
    except Exception as exc:
        result.errors.append(f"first run: {type(exc).__name__}: {exc}")
    result.init_s = time.perf_counter() - t0

    for i in range(runs):
        t = time.perf_counter()
        try:
            y = enhancer.run(x)
        except Exception as exc:  # e.g. BackendError: corrupted output
            result.errors.append(f"timed run {i + 1}: {type(exc).__name__}: {exc}")
            continue
        result.runs_s.append(time.perf_counter() - t)
        if result.output is None:
            result.output = y
    from ..consistency import check_consistency

    report = check_consistency(enhancer.session.run, x, runs=repeats, name=name,
                               value_range=_sane_range(), range_tol=0.0)
    result.consistency = consistency_row(report)
    return result

# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def _cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

def _cache_load(cache: Path, key: str, name: str, image: str) -> BackendRun | None:
    meta_p, out_p = cache / f"{key}.json", cache / f"{key}.npy"
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
        output = np.load(out_p) if meta.get("has_output") else None
    except (OSError, ValueError):
        return None
    return BackendRun(
        name, image, output, meta.get("init_s"), list(meta.get("runs_s", [])),
        dict(meta.get("consistency", {})), meta.get("error"), list(meta.get("errors", [])), cached=True,
    )

def _cache_store(cache: Path, key: str, run: BackendRun) -> None:
    import io as _io

    from ...io import atomic_write_bytes
    from ..report import json_safe

    if run.output is not None:
        buf = _io.BytesIO()
        np.save(buf, run.output, allow_pickle=False)
        atomic_write_bytes(cache / f"{key}.npy", buf.getvalue())
    meta = {
        "backend": run.backend, "image": run.image, "init_s": run.init_s, "runs_s": run.runs_s,
        "consistency": run.consistency, "error": run.error, "errors": run.errors, "has_output": run.output is not None,
    }
    atomic_write_bytes(cache / f"{key}.json", json.dumps(json_safe(meta)).encode())

# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------
def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", disable=not enabled, file=sys.stderr, desc="dermsr study")

def run_study(out: str | os.PathLike[str], config: StudyConfig | None = None, **options: Any) -> dict[str, Any]:
    """Run the study, write the report into ``out`` and return the results (as in results.json).

    ``options`` override :class:`StudyConfig` fields, e.g. ``run_study("out", runs=2)``.
    """
    from ...degrade import Degrader
    from ...io import read_image
    from ...models import load_model
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
    names = _image_names(paths)
    backends, skipped = resolve_backends(cfg.backends)
    if not backends:
        raise BackendUnavailableError(
            "none of the requested backends can run here: "
            + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
        )
    model = load_model(cfg.model)
    reference = cfg.reference if cfg.reference in backends else backends[0]
    compare = [m for m in dict.fromkeys(cfg.compare_models) if load_model(m).sha256 != model.sha256]
    degrader = Degrader.preset("thesis", size=cfg.size)
    scorer = _Scorer(cfg.lpips_backbone)
    repeats = cfg.n_repeats

    cache = out_dir / "cache"
    figures: list[dict[str, Any]] = []
    image_rows: list[dict[str, Any]] = []
    runs: list[BackendRun] = []
    pairwise: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    notes: list[str] = []
    dead: dict[str, str] = {}

    steps_per_image = len(backends) + len(compare) + 2 + (1 if cfg.figures else 0)
    comparers: dict[str, Any] = {}
    bar = _progress(len(paths) * steps_per_image, cfg.progress)
    try:
        for path, name in zip(paths, names, strict=True):
            bar.set_postfix_str(f"{name}: degrade")
            image = read_image(path)
            image_sha = file_sha256(path)
            deg = degrader.apply(image, seed=cfg.seed)
            x = np.ascontiguousarray(deg.lr, dtype=np.float32)
            out_hw = (x.shape[2] * model.scale, x.shape[3] * model.scale)
            gt = ground_truth(deg.hr, out_hw)
            baseline = bicubic_baseline(x, model.scale)
            image_rows.append({
                "image": name, "path": str(path), "sha256": image_sha,
                "height": int(image.shape[0]), "width": int(image.shape[1]),
                "hr_size": [int(deg.hr.shape[0]), int(deg.hr.shape[1])],
                "lr_shape": list(x.shape), "output_size": list(out_hw),
            })
            bar.update(1)

            outputs: dict[str, np.ndarray] = {}
            for backend in backends:
                bar.set_postfix_str(f"{name}: {backend}")
                key = _cache_key({
                    "v": _CACHE_VERSION, "image": image_sha, "backend": backend,
                    "model": model.sha256, "degrader": degrader.to_dict(), "seed": cfg.seed,
                    "runs": cfg.runs, "repeats": repeats, "threads": cfg.threads,
                    "dermsr": _dermsr_version(),
                })
                run = _cache_load(cache, key, backend, name) if cfg.resume else None
                if run is None and backend in dead:
                    run = BackendRun(backend, name, None, error=dead[backend])
                elif run is None:
                    run = run_backend(backend, model, x, runs=cfg.runs, repeats=repeats,
                                      threads=cfg.threads, image=name)
                    if run.error is None:
                        _cache_store(cache, key, run)
                runs.append(run)
                if run.error and run.error.startswith("could not load"):
                    dead[backend] = run.error  # do not retry a runtime that cannot load
                if run.output is not None:
                    outputs[backend] = _hwc(run.output)
                bar.update(1)

            others: dict[str, np.ndarray] = {}
            for m in compare:  # further models, on the reference runtime, against the ground truth
                bar.set_postfix_str(f"{name}: {m}")
                try:
                    if m not in comparers:
                        from ...enhance import Enhancer

                        comparers[m] = Enhancer(m, backend=reference, threads=cfg.threads)
                    others[m] = _hwc(comparers[m].run(x))
                except Exception as exc:  # a model that cannot run is reported, not fatal
                    notes.append(f"model {m} could not run on {reference} for {name}: {type(exc).__name__}: {exc}")
                bar.update(1)

            bar.set_postfix_str(f"{name}: metrics")
            for a, b in itertools.combinations([n for n in backends if n in outputs], 2):
                pairwise.append({"image": name, "a": a, "b": b, **scorer.compare(outputs[a], outputs[b])})
            truth.append({"image": name, "method": "ground truth", "sharpness": scorer.sharpness(gt)})
            for method, y in [*outputs.items(), *others.items(), (BICUBIC, baseline)]:
                truth.append({"image": name, "method": method, **scorer.compare(y, gt),
                              "sharpness": scorer.sharpness(y)})
            bar.update(1)

            if cfg.figures:
                bar.set_postfix_str(f"{name}: figures")
                figures.extend(_draw_figures(out_dir, name, _hwc(x), gt, baseline, outputs, cfg.reference,
                                              cfg.dpi))
                bar.update(1)
    finally:
        bar.close()

    if any(r.cached for r in runs):
        n = sum(r.cached for r in runs)
        notes.append(
            f"{n} of {len(runs)} runtime × image results were loaded from {cache} (a resumed "
            "study); their timings come from the run that computed them. Delete that folder, or "
            "pass --no-resume, to measure everything again."
        )
    speed: list[dict[str, Any]] = []
    run_backends = [b for b in backends if any(r.backend == b and r.output is not None for r in runs)]
    if cfg.speed and run_backends:
        from ...bench import run_benchmarks

        bar = _progress(len(run_backends), cfg.progress)
        bar.set_postfix_str("speed, each runtime in a fresh process")
        speed = [r.to_dict() for r in run_benchmarks(
            run_backends, [(cfg.size, cfg.size)], model=model, repeat=cfg.runs, warmup=1, threads=cfg.threads,
            tile=None, raw=False, progress=lambda _r: bar.update(1))]
        bar.close()
    collected = _Collected(model=model, degrader=degrader, scorer=scorer, backends=backends, skipped=skipped,
                           images=image_rows, runs=runs, pairwise=pairwise, truth=truth, figures=figures,
                           notes=notes, load_before=load_before, compare=compare, reference=reference,
                           speed=speed)
    results = _assemble(cfg, out_dir, collected)
    results["wall_time_s"] = time.perf_counter() - wall0
    write_report(results, out_dir)
    return results
