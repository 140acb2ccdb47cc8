"""The reference study as one call: degrade, enhance on every runtime, compare, time, report.

It reproduces the comparison of a 2025 master's thesis from Politecnico di Torino
("Development of Deep Learning Integrated Mobile Frameworks for Dermatological Image
Analysis"): SRVGGNetCompact ×4 run on PyTorch, NCNN, ExecuTorch and ONNX Runtime over three
ISIC images degraded by a fixed pipeline, then compared pairwise (MSE, PSNR, SSIM, LPIPS),
timed (mean of 5 runs, inference only), checked for repeated-run stability and plotted. It
adds what the thesis left out: every output *and* a bicubic baseline scored against the
ground truth, so the report can say whether the enhancement helps at all.

For each image (``run_study``):

1. the ``"thesis"`` degradation (:meth:`dermsr.Degrader.preset`) gives the low-resolution
   input ``lr`` (float32 NCHW) and ``hr``, the central square crop;
2. the ground truth is ``hr`` resized to the output size with ``cv2.INTER_AREA``; the bicubic
   baseline is ``lr`` resized ×scale with ``cv2.INTER_CUBIC`` (clipped to [0, 1]);
3. on each runtime: initialisation (``Enhancer`` construction, runtime load and the first
   run) is timed once; after it, ``runs`` calls of :meth:`Enhancer.run` on the prepared
   tensor are timed one by one (inference only); ``repeats`` raw session runs feed the
   consistency check;
4. every pair of runtimes, and every runtime and the baseline against the ground truth, is
   scored with :mod:`dermsr.evaluate` metrics; figures are drawn.

Per-image, per-runtime results are cached under ``OUT/cache`` (keyed by everything they
depend on), so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..bench import summarise_timings
from ..errors import BackendUnavailableError, InputError
from ..export.cache import file_sha256
from ..imaging import nchw_to_hwc as _hwc
from ..imaging import to_float32 as _to_float01
from ..machine import load_average as _load_average
from ..machine import machine_info
from ..validation import check_int
from .metric_info import FIDELITY_METRICS, METRIC_INFO

__all__ = [
    "METRICS",
    "BackendRun",
    "StudyConfig",
    "bicubic_baseline",
    "enhancement_verdict",
    "ground_truth",
    "machine_info",
    "resolve_backends",
    "run_study",
    "summarise_timings",
]

#: Full-reference metrics of the study, in the thesis's table order (Tables 2-5).
METRICS = FIDELITY_METRICS
#: Whether a larger value means closer to the reference.
HIGHER_IS_BETTER = {m: METRIC_INFO[m].higher_is_better for m in METRICS}
#: Name used for the bicubic baseline wherever a runtime name could appear.
BICUBIC = "bicubic"
#: Bump when the cache's content changes meaning.
_CACHE_VERSION = 1


@dataclass(frozen=True)
class StudyConfig:
    """What to study. Defaults reproduce the thesis on the bundled images.

    ``backends=None`` means every registered backend (unavailable ones are skipped with the
    reason). ``repeats`` (default: ``runs``, at least 2) is how many raw runs the consistency
    check compares. ``size`` is the side of the low-resolution input (the thesis's 224).
    ``model`` is anything :func:`dermsr.models.load_model` accepts (default: the library's
    default model); it runs on every runtime. ``compare_models`` are further models scored
    against the ground truth and bicubic on the reference runtime (default: the reference
    study's released weights, ``realesr-animevideov3-x4``; skipped when it is ``model``), so
    one report says which model helps. ``speed`` times each runtime as ``dermsr bench`` does
    (a fresh process per runtime, one warm-up, the median of ``runs`` runs). ``lpips_backbone``: AlexNet weights for LPIPS (else
    ``$DERMSR_LPIPS_BACKBONE``, torchvision's cache or download; if none works LPIPS is
    skipped and the report says so).

    >>> StudyConfig(runs=3).n_repeats, StudyConfig(runs=1).n_repeats, StudyConfig(repeats=7).n_repeats
    (3, 2, 7)
    """

    images: tuple[Path, ...] = ()
    backends: tuple[str, ...] | None = None
    runs: int = 5
    repeats: int | None = None
    seed: int = 0
    size: int = 224
    model: Any = None
    lpips_backbone: str | None = None
    threads: int | None = None
    reference: str = "torch"
    compare_models: tuple[str, ...] = ("realesr-animevideov3-x4",)
    speed: bool = True
    resume: bool = True
    figures: bool = True
    dpi: int = 80
    progress: bool = True

    def __post_init__(self) -> None:
        check_int(self.runs, "runs", lo=1)
        check_int(self.repeats, "repeats", lo=2, none_ok=True)
        check_int(self.size, "size (the low-resolution side)", lo=16)
        if self.lpips_backbone is not None and not Path(self.lpips_backbone).expanduser().is_file():
            raise InputError(f"LPIPS backbone {self.lpips_backbone} does not exist; expected an AlexNet "
                             "weights file (.pth), e.g. torchvision's alexnet-owt-7be5be79.pth")
        check_int(self.seed, "seed")
        check_int(self.dpi, "dpi", lo=20, hi=600)
        check_int(self.threads, "threads", lo=1, none_ok=True)
        if isinstance(self.compare_models, str) or not all(isinstance(m, str) for m in self.compare_models):
            raise InputError(f"compare_models must be a tuple of model names or files, got {self.compare_models!r}")

    @property
    def n_repeats(self) -> int:
        return max(2, self.runs) if self.repeats is None else int(self.repeats)


@dataclass
class BackendRun:
    """One runtime on one image: its output, timings and consistency numbers."""

    backend: str
    image: str
    output: np.ndarray | None  # float32 (1, 3, H, W) of the first timed Enhancer.run
    init_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    consistency: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the runtime could not be loaded
    errors: list[str] = field(default_factory=list)  # runs that raised (corrupted output ...)
    cached: bool = False


# ---------------------------------------------------------------------------------------------
# small pure pieces
# ---------------------------------------------------------------------------------------------
def ground_truth(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The HR reference at the output size: ``hr`` (HWC) resized with ``cv2.INTER_AREA``.

    Returns float32 HWC RGB in [0, 1]; ``size`` is (height, width).

    >>> hr = np.full((40, 40, 3), 255, np.uint8)
    >>> g = ground_truth(hr, (16, 16)); g.shape, g.dtype, float(g.max())
    ((16, 16, 3), dtype('float32'), 1.0)
    """
    import cv2

    hr = np.asarray(hr)
    if hr.ndim == 4:
        hr = _hwc(hr)
    if hr.ndim == 2:
        hr = np.repeat(hr[:, :, None], 3, axis=2)
    if hr.ndim != 3 or hr.shape[2] not in (3, 4):
        raise InputError(f"expected an (H, W, 3) HR image, got shape {hr.shape}")
    hr = _to_float01(hr[:, :, :3])
    h, w = size
    out = cv2.resize(hr, (int(w), int(h)), interpolation=cv2.INTER_AREA)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def bicubic_baseline(lr: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every model must beat: ``lr`` (float32 NCHW) resized ×``scale`` with
    ``cv2.INTER_CUBIC``, clipped to [0, 1]; float32 HWC.

    >>> lr = np.full((1, 3, 4, 5), 0.5, np.float32)
    >>> b = bicubic_baseline(lr, 4); b.shape, float(b.min()), float(b.max())
    ((16, 20, 3), 0.5, 0.5)
    """
    from .scorecard import upscale

    return upscale(_hwc(lr), scale, "bicubic")


def study_command(cfg: StudyConfig, out: str | os.PathLike[str]) -> str:
    """The ``dermsr study`` command line that repeats ``cfg``.

    >>> study_command(StudyConfig(backends=("torch",), runs=2), "out")
    'dermsr study --out out --backends torch --runs 2 --seed 0'
    """
    import shlex

    args = ["dermsr", "study", *(str(p) for p in cfg.images), "--out", str(out)]
    if cfg.backends is not None:
        args += ["--backends", ",".join(cfg.backends)]
    args += ["--runs", str(cfg.runs)]
    if cfg.repeats is not None:
        args += ["--repeats", str(cfg.repeats)]
    args += ["--seed", str(cfg.seed)]
    if cfg.size != StudyConfig.size:
        args += ["--size", str(cfg.size)]
    for flag, value in (("--model", getattr(cfg.model, "name", cfg.model)), ("--lpips-backbone", cfg.lpips_backbone),
                        ("--threads", cfg.threads)):
        if value is not None:
            args += [flag, str(value)]
    if cfg.dpi != StudyConfig.dpi:
        args += ["--dpi", str(cfg.dpi)]
    if tuple(cfg.compare_models) != StudyConfig.compare_models:
        args += ["--compare-models", ",".join(cfg.compare_models) or "none"]
    if not cfg.speed:
        args.append("--no-speed")
    if not cfg.figures:
        args.append("--no-figures")
    return " ".join(shlex.quote(a) for a in args)


def resolve_backends(requested: Sequence[str] | None) -> tuple[list[str], list[dict[str, str]]]:
    """Split the requested backends into (runnable, skipped-with-reason).

    ``None`` means every registered backend. A name that is not registered is an
    :class:`~dermsr.errors.UnknownNameError` (a typo should stop the study, not hide in it);
    a registered backend that cannot run here is skipped, with its reason.
    """
    from ..enhance.registry import backend_names, get_backend

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


def _runtime_versions() -> list[dict[str, Any]]:
    from ..enhance.registry import available

    return [
        {"name": a.name, "available": a.available, "version": a.version, "reason": a.reason}
        for a in available()
    ]


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


def enhancement_verdict(truth: Sequence[dict[str, Any]], method: str) -> dict[str, Any]:
    """Does ``method`` beat the bicubic baseline against the ground truth?

    For each metric present: the mean over images of ``method`` and of the baseline, how many
    images ``method`` wins, and whether it is better on the mean. ``verdict`` is "helps"
    (better on every metric), "does not help" (better on none) or "mixed".

    >>> rows = [{"image": "a", "method": "torch", "psnr": 30.0, "ssim": 0.9},
    ...         {"image": "a", "method": "bicubic", "psnr": 31.0, "ssim": 0.8}]
    >>> v = enhancement_verdict(rows, "torch")
    >>> v["verdict"], v["metrics"]["psnr"]["better"], v["metrics"]["ssim"]["wins"]
    ('mixed', False, 1)
    """
    mine = {r["image"]: r for r in truth if r.get("method") == method}
    base = {r["image"]: r for r in truth if r.get("method") == BICUBIC}
    images = [i for i in mine if i in base]
    per_metric: dict[str, Any] = {}
    for m in METRICS:
        pairs = [(mine[i].get(m), base[i].get(m)) for i in images]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        higher = HIGHER_IS_BETTER[m]
        wins = sum((a > b) if higher else (a < b) for a, b in pairs)
        mean_a = statistics.fmean(a for a, _ in pairs)
        mean_b = statistics.fmean(b for _, b in pairs)
        per_metric[m] = {
            "method_mean": mean_a, "baseline_mean": mean_b, "wins": int(wins), "images": len(pairs),
            "better": bool(mean_a > mean_b if higher else mean_a < mean_b),
        }
    better = [m for m, v in per_metric.items() if v["better"]]
    if not per_metric:
        verdict = "unknown"
    elif len(better) == len(per_metric):
        verdict = "helps"
    elif not better:
        verdict = "does not help"
    else:
        verdict = "mixed"
    return {"method": method, "baseline": BICUBIC, "verdict": verdict, "metrics": per_metric}


# ---------------------------------------------------------------------------------------------
# one runtime on one image
# ---------------------------------------------------------------------------------------------
def consistency_row(report: Any) -> dict[str, Any]:
    """The numbers of a :class:`~dermsr.evaluate.consistency.ConsistencyReport` as one flat row."""
    runs = report.runs
    return {
        "runs": len(runs),
        "verdict": report.verdict,
        "bit_identical": bool(report.bit_identical),
        "max_abs_dev": float(report.max_deviation),
        "nonfinite": int(sum(r.nonfinite for r in runs)),
        "out_of_range": int(sum(r.out_of_range for r in runs)),
        "extreme": int(sum(r.extreme for r in runs)),
        "blank": int(sum(bool(r.blank) for r in runs)),
        "failures": int(sum(r.error is not None for r in runs)),
        "corrupted_runs": list(report.corrupted_runs),
        "problems": "; ".join(f"run {r.index}: {', '.join(r.problems)}" for r in runs if r.problems),
    }


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
    from ..enhance import Enhancer

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
    from .consistency import check_consistency

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

    from ..io import atomic_write_bytes
    from .report import json_safe

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
# metrics
# ---------------------------------------------------------------------------------------------
class _Scorer:
    """An :class:`~dermsr.evaluate.Evaluator` with LPIPS when its backbone can be found.

    The backbone is resolved and the network built up front, so a missing or bad file turns
    LPIPS off with its reason (reported) instead of failing half-way through the study.
    """

    def __init__(self, backbone: str | None) -> None:
        from .evaluator import Evaluator

        self.lpips_error: str | None = None
        self.lpips_source: str | None = None
        metrics: tuple[str, ...] = METRICS
        try:
            from .lpips import lpips_network, resolve_backbone

            source = resolve_backbone(backbone)
            lpips_network(source.path)
            self.lpips_source = str(source)
            backbone = str(source.path)
        except Exception as exc:  # no weights offline, bad file, lpips not installed
            self.lpips_error = f"{type(exc).__name__}: {exc}"
            metrics = tuple(m for m in METRICS if m != "lpips")
        self.evaluator = Evaluator(metrics, lpips_backbone=backbone)

    @property
    def has_lpips(self) -> bool:
        return self.lpips_error is None

    def compare(self, a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
        row: dict[str, float | None] = {m: None for m in METRICS}
        row.update({k: float(v) for k, v in self.evaluator.compare(a, b).items()})
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        row["max_abs"] = float(d.max())
        row["mean_abs"] = float(d.mean())
        return row

    def sharpness(self, image: np.ndarray) -> float:
        return float(self.evaluator.sharpness(image))


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
    from ..degrade import Degrader
    from ..io import read_image
    from ..models import load_model
    from .report import write_report

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
        from ..data import sample_images

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
                        from ..enhance import Enhancer

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
        from ..bench import run_benchmarks

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


def _sane_range() -> tuple[float, float]:
    from ..enhance.enhancer import SANE_RANGE

    return SANE_RANGE


def _dermsr_version() -> str:
    from .._version import __version__

    return __version__


def _draw_figures(out_dir: Path, name: str, lr: np.ndarray, gt: np.ndarray, baseline: np.ndarray,
                  outputs: dict[str, np.ndarray], reference: str, dpi: int) -> list[dict[str, Any]]:
    """Histograms, difference maps against ``reference`` and the qualitative grid, as PNGs."""
    from . import visual

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
