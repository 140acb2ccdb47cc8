"""Benchmark core: latency, initialisation, throughput, memory, overhead and arithmetic per runtime.

(Over 400 lines on purpose: the measurement, the fresh-process grid that runs it and the
table that prints it share one result record and are read together when a figure is doubted.)

One function measures one backend on one input size (:func:`bench_backend`); one runs a grid,
each cell in a fresh Python process so peak memory and initialisation are honest
(:func:`run_benchmarks`); :func:`format_table` prints the grid like Table 1 of the reference
study. ``dermsr bench`` (see ``docs/performance.md``) is a thin wrapper around these.

How each number is taken
------------------------
- **Timer**: :func:`time.perf_counter` around ``Enhancer.run(x)`` on a float32 NCHW array, or
  (``input_dtype="uint8"``) around ``Enhancer.enhance(image)`` on a uint8 HxWx3 photo: the
  path an app takes, conversions and the integer output included.
  ``run`` returns a host NumPy array, so on a GPU the copy back (``TorchSession._to_host``
  calls ``torch.cuda.synchronize`` before it) ends the timed region only after the device has
  finished: there is no unsynchronised GPU timer here.
- **Initialisation**: wall time from constructing the :class:`~dermsr.Enhancer` through its
  first ``run`` (model load, any export/cache lookup, runtime session, first inference).
- **Warm-up**: ``warmup`` further untimed runs after the first, then ``repeat`` timed runs.
  Median, minimum and maximum are reported; images/s is ``1000 / median_ms`` and megapixels/s
  counts **input** (low-resolution) pixels: ``h·w / 1e6 · images/s``.
- **Raw runtime call**: the same tensor through the runtime's own API with nothing of dermsr
  around it (each session's ``raw_call``, see :func:`raw_runner`), timed interleaved with the dermsr path so machine noise
  hits both alike; ``overhead = median(dermsr) / median(raw)``. Only for untiled inputs.
- **Peak memory**: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh process that runs
  only this backend at this size, minus its value just before the runtime was loaded (so the
  interpreter, NumPy and dermsr are excluded; the runtime's own import, weights, arena and
  buffers are included). tracemalloc would miss native allocations.
- **Fidelity** (``psnr_vs_fp32``): after the timings, the worst PSNR of this cell's Enhancer
  against dermsr's PyTorch fp32 reference over the held-out crops of the bundled images
  (:meth:`dermsr.export.quantize.CalibrationSet.held_out_pairs`: one image never used for the
  default int8 calibration, four 96² crops, bicubic ÷4), so every runtime × precision row
  says how far it strays from fp32 on real dermoscopy. Random inputs would mislead here: a
  statically quantized network is only calibrated for image-like activations. Int8 sessions
  also report the figures their artifact's fidelity gate recorded (``fidelity_gate``).
- **Arithmetic**: GFLOP per image from :meth:`dermsr.models.Model.gflops` (2 × multiply-
  accumulates of the convolutions), achieved GFLOP/s = that / median seconds, and the fraction
  of the machine's estimated fp32 peak (:func:`peak_gflops`).

>>> parse_size("224"), parse_size("2048x1536")
((224, 224), (1536, 2048))
>>> summarize([3.0, 1.0, 2.0])["median_ms"]
2.0
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .machine import CpuInfo, cpu_info, peak_gflops

__all__ = [
    "BenchResult",
    "CpuInfo",
    "bench_backend",
    "bench_fidelity",
    "cpu_info",
    "environment",
    "format_size",
    "format_table",
    "make_input",
    "make_photo",
    "parse_size",
    "parse_sizes",
    "peak_gflops",
    "precision_summary",
    "raw_runner",
    "run_benchmarks",
    "summarise_timings",
    "summarize",
]

DEFAULT_SIZES = "224"
#: What a cell feeds the Enhancer: a float32 NCHW tensor to ``run`` or a uint8 photo to ``enhance``.
INPUT_DTYPES = ("float32", "uint8")


# -- sizes ------------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """``"224"`` → (224, 224); ``"WxH"`` (width × height, like an image's dimensions) → (H, W)."""
    parts = str(text).lower().strip().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (1, 2) or min(nums, default=0) < 1:
        raise InputError(f"size must be 'N' or 'WxH' with positive integers, got {text!r}")
    if len(nums) == 1:
        return nums[0], nums[0]
    return nums[1], nums[0]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """Comma-separated sizes: ``"224,512,2048x1536"``."""
    items = [s for s in str(text).split(",") if s.strip()]
    if not items:
        raise InputError(f"expected at least one size like '224' or '2048x1536', got {text!r}")
    return [parse_size(s) for s in items]


def format_size(hw: Sequence[int]) -> str:
    """(H, W) → ``"224"`` when square, else ``"WxH"``."""
    h, w = int(hw[0]), int(hw[1])
    return str(h) if h == w else f"{w}x{h}"


def make_input(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A reproducible float32 (1, 3, H, W) input in [0, 1] (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    return rng.random((1, 3, height, width), dtype=np.float32)


def make_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """:func:`make_input` as an app holds a photo: uint8 (H, W, 3), rounded.

    >>> make_photo(2, 3).shape, make_photo(2, 3).dtype.name
    ((2, 3, 3), 'uint8')
    """
    return np.rint(make_input(height, width, seed)[0].transpose(1, 2, 0) * 255).astype(np.uint8)


def summarise_timings(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean, sample standard deviation (n-1), median, min and max of run times in
    seconds: the one timing summary of ``dermsr bench`` and ``dermsr study``.

    >>> s = summarise_timings([0.1, 0.2, 0.3])
    >>> round(s["mean_s"], 6), round(s["std_s"], 6), s["median_s"], s["n"]
    (0.2, 0.1, 0.2, 3)
    """
    v = [float(t) for t in values]
    if not v:
        return {"n": 0, "mean_s": None, "std_s": None, "median_s": None, "min_s": None, "max_s": None}
    return {
        "n": len(v),
        "mean_s": statistics.fmean(v),
        "std_s": statistics.stdev(v) if len(v) > 1 else 0.0,
        "median_s": statistics.median(v),
        "min_s": min(v),
        "max_s": max(v),
    }


def summarize(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, min, max and mean of timings in milliseconds (:func:`summarise_timings`)."""
    if not times_ms:
        raise InputError("no timings to summarise")
    s = summarise_timings([t / 1000.0 for t in times_ms])
    return {f"{k}_ms": float(s[f"{k}_s"]) * 1000.0 for k in ("median", "min", "max", "mean")}


# -- raw runtime calls ------------------------------------------------------------------------
def raw_runner(backend: str, session: Any) -> Callable[[np.ndarray], Any] | None:
    """The runtime's own call on ``session``'s loaded model (:meth:`Session.raw_call
    <dermsr.backends.Session>`), with none of dermsr's checks, tiling, locking or conversions;
    None when the session offers none (overhead is then reported as n/a). ``backend`` names
    the session in errors only."""
    return session.raw_call()  # the contract (dermsr.backends.check_session) guarantees it


# -- one measurement --------------------------------------------------------------------------
@dataclass
class BenchResult:
    """One backend at one size. ``status`` is ``"ok"``, ``"skipped"`` (unavailable) or ``"error"``."""

    backend: str
    size: str
    height: int
    width: int
    status: str = "ok"
    reason: str | None = None
    resolved_backend: str | None = None
    runtime_version: str | None = None
    model: str | None = None
    threads: int | None = None
    device: str = "cpu"
    input_dtype: str = "float32"
    tiles: int | None = None
    repeat: int = 0
    times_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    init_ms: float | None = None
    images_per_s: float | None = None
    input_mpix_per_s: float | None = None
    peak_rss_mb: float | None = None
    memory_method: str | None = None
    raw_median_ms: float | None = None
    raw_times_ms: list[float] = field(default_factory=list)
    overhead: float | None = None
    overhead_note: str | None = None
    gflops_per_image: float | None = None
    gflops_per_s: float | None = None
    peak_gflops: float | None = None
    peak_fraction: float | None = None
    precision: str = "fp32"
    calibration: str | None = None
    psnr_vs_fp32: float | None = None
    fidelity_gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        return cls(**data)


def _maxrss_mb() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def _timed(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x)
    return (time.perf_counter() - t0) * 1000.0


def _availability(backend: str, model: Any, device: str):
    """(concrete backend name, its Availability); ``"auto"`` is resolved as the Enhancer does."""
    from .enhance.enhancer import Enhancer
    from .enhance.registry import get_backend

    name = backend
    if backend == "auto":
        name = Enhancer(model, backend="auto", device=device).backend_name
    return name, get_backend(name).availability()


def bench_fidelity(enhancer: Any) -> float:
    """Worst PSNR (dB) of ``enhancer`` against PyTorch fp32 over the bundled held-out crops."""
    from .enhance.enhancer import Enhancer
    from .export.quantize import calibration_set, psnr

    reference = Enhancer(enhancer.model, backend="torch", tile=None)
    worst = float("inf")
    for _, lr, _ in calibration_set(None).held_out_pairs():
        worst = min(worst, psnr(enhancer.run(lr), reference.run(lr)))
    return worst


def bench_backend(
    backend: str,
    model: Any = None,
    size: tuple[int, int] | str = (224, 224),
    *,
    repeat: int = 10,
    warmup: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    tile: int | str | None = "auto",
    raw: bool = True,
    seed: int = 0,
    peak: float | None = None,
    fresh_process: bool = False,
    input_dtype: str = "float32",
    precision: str = "fp32",
    calibration: str | None = None,
    fidelity: bool = True,
) -> BenchResult:
    """Measure ``backend`` on one (H, W) input in this process; see the module docstring.

    Unavailable backends come back with ``status="skipped"`` and the reason, not an exception.
    ``peak`` overrides the estimated machine peak (GFLOP/s). ``fresh_process`` only labels the
    memory figure (set by :func:`run_benchmarks`' worker). ``input_dtype="uint8"`` times
    ``Enhancer.enhance`` on a uint8 HxWx3 image instead of ``run`` (no raw-call comparison).
    ``precision`` (and, for int8, ``calibration``) as in :class:`~dermsr.Enhancer`; a backend
    that does not run it is skipped. ``fidelity`` measures ``psnr_vs_fp32`` after the timings.

    >>> r = bench_backend("no-such-runtime", size="8")
    >>> r.status, r.reason.startswith("unknown backend")
    ('skipped', True)
    """
    from .enhance.enhancer import Enhancer
    from .errors import DermsrError
    from .models import load_model

    h, w = parse_size(size) if isinstance(size, str) else (int(size[0]), int(size[1]))
    if repeat < 1 or warmup < 0:
        raise InputError(f"repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    if input_dtype not in INPUT_DTYPES:
        raise InputError(f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}")
    label = format_size((h, w)) + (" uint8" if input_dtype == "uint8" else "")
    res = BenchResult(backend, label, h, w, threads=threads, device=device, repeat=repeat,
                      input_dtype=input_dtype, precision=precision, calibration=calibration)
    m = load_model(model)
    res.model = m.name
    rss0 = _maxrss_mb()  # before anything imports a runtime (resolving "auto" may)
    try:
        resolved, avail = _availability(backend, m, device)
    except DermsrError as exc:
        res.status, res.reason = "skipped", str(exc)
        return res
    res.resolved_backend, res.runtime_version = resolved, avail.version
    if not avail.available:
        res.status, res.reason = "skipped", avail.reason
        return res
    from .enhance.registry import get_backend

    runs = get_backend(resolved).precisions
    if precision not in runs:
        res.status, res.reason = "skipped", f"{resolved} runs {', '.join(runs)}, not {precision}"
        return res

    # a photo as an app holds it (enhance() returns uint8 too), or the float tensor run() takes
    x = make_photo(h, w, seed) if input_dtype == "uint8" else make_input(h, w, seed)
    try:
        t0 = time.perf_counter()
        enhancer = Enhancer(m, backend=backend, device=device, tile=tile, threads=threads,
                            precision=precision, calibration=calibration)
        call = enhancer.enhance if input_dtype == "uint8" else enhancer.run
        call(x)
        res.init_ms = (time.perf_counter() - t0) * 1000.0
        for _ in range(warmup):
            call(x)
        plan = enhancer.tile_plan(h, w)
        res.tiles = len(plan.tiles)
        rawfn = None
        if raw:
            if input_dtype == "uint8":
                res.overhead_note = "uint8 input: enhance() includes conversions, no raw call to compare"
            elif res.tiles > 1:
                res.overhead_note = "tiled input: no single raw call to compare"
            else:
                rawfn = raw_runner(enhancer.backend_name, enhancer.session)
                if rawfn is None:
                    res.overhead_note = f"no raw-call adapter for {enhancer.backend_name!r}"
                else:
                    for _ in range(max(1, warmup)):
                        rawfn(x)
        for _ in range(repeat):
            res.times_ms.append(_timed(call, x))
            if rawfn is not None:
                res.raw_times_ms.append(_timed(rawfn, x))
    except (DermsrError, RuntimeError, OSError, MemoryError) as exc:
        res.status, res.reason = "error", f"{type(exc).__name__}: {exc}"
        return res

    res.peak_rss_mb = max(0.0, _maxrss_mb() - rss0)
    quantization = getattr(enhancer.session, "quantization", None)
    if isinstance(quantization, dict):
        res.fidelity_gate = quantization.get("fidelity")
    if fidelity:
        try:
            res.psnr_vs_fp32 = bench_fidelity(enhancer)
        except (DermsrError, RuntimeError, OSError) as exc:
            res.reason = f"fidelity not measured: {type(exc).__name__}: {exc}"
    res.memory_method = (
        "ru_maxrss delta, fresh process" if fresh_process
        else "ru_maxrss delta, shared process (lower bound)"
    )
    res.__dict__.update(summarize(res.times_ms))
    med_s = res.median_ms / 1000.0
    res.images_per_s = 1.0 / med_s
    res.input_mpix_per_s = h * w / 1e6 / med_s
    if res.raw_times_ms:
        res.raw_median_ms = float(statistics.median(res.raw_times_ms))
        res.overhead = res.median_ms / res.raw_median_ms
    res.gflops_per_image = m.gflops(h, w)
    if res.gflops_per_image is None:  # an architecture whose arithmetic dermsr does not count
        return res
    res.gflops_per_s = res.gflops_per_image / med_s
    if device == "cpu":
        res.peak_gflops = peak if peak is not None else peak_gflops(threads)
        if res.peak_gflops:
            res.peak_fraction = res.gflops_per_s / res.peak_gflops
    return res


# -- the grid, each cell in a fresh process ---------------------------------------------------
def _worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    model = spec.pop("model")
    if spec.pop("model_is_pickle", False):
        import pickle

        with open(model, "rb") as f:
            model = pickle.load(f)  # written by run_benchmarks in this same session
    res = bench_backend(model=model, fresh_process=True, **spec)
    print("DERMSR-BENCH-RESULT " + json.dumps(res.to_dict()), flush=True)
    return 0


def _run_isolated(spec: dict[str, Any], timeout: float | None) -> BenchResult:
    src = str(Path(__file__).resolve().parents[1])  # the folder holding the dermsr package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="dermsr-bench-") as tmp:
        path = Path(tmp) / "spec.json"
        if not isinstance(spec["model"], (str, type(None))):
            import pickle

            mpath = Path(tmp) / "model.pkl"
            mpath.write_bytes(pickle.dumps(spec["model"]))
            spec = {**spec, "model": str(mpath), "model_is_pickle": True}
        path.write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "dermsr.bench", str(path)],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("DERMSR-BENCH-RESULT "):
            return BenchResult.from_dict(json.loads(line.split(" ", 1)[1]))
    h, w = spec["size"]
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return BenchResult(spec["backend"], format_size((h, w)), h, w, status="error",
                       reason=f"worker exited {proc.returncode}: {tail[0]}",
                       precision=spec.get("precision", "fp32"))


def run_benchmarks(
    backends: Sequence[str] | None = None,
    sizes: Sequence[tuple[int, int]] | str = DEFAULT_SIZES,
    *,
    model: Any = None,
    repeat: int = 10,
    warmup: int = 1,
    threads: Sequence[int | None] | int | None = None,
    device: str = "cpu",
    tile: int | str | None = "auto",
    raw: bool = True,
    peak: float | None = None,
    isolate: bool = True,
    input_dtype: str = "float32",
    timeout: float | None = None,
    progress: Callable[[BenchResult], None] | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration: str | None = None,
    fidelity: bool = True,
) -> list[BenchResult]:
    """Every backend (default: all registered) × precision × size × thread count.

    With ``isolate`` (default) each cell runs in a fresh ``python -m dermsr.bench`` process, so
    its initialisation is cold and its peak RSS is its own. ``input_dtype`` as in
    :func:`bench_backend`. ``model`` is a built-in name, a
    path, or a :class:`~dermsr.models.Model` (handed to the worker as a pickle).
    """
    from .backends import backend_names

    names = list(backends) if backends else backend_names()
    size_list = parse_sizes(sizes) if isinstance(sizes, str) else [tuple(s) for s in sizes]
    thread_list = list(threads) if isinstance(threads, (list, tuple)) else [threads]
    if isinstance(model, Path):
        model = str(model)
    results = []
    from .validation import check_precision

    precisions = [check_precision(p) for p in precisions]
    for name in names:
        for precision in precisions:
            for hw in size_list:
                for th in thread_list:
                    kwargs = dict(size=list(hw), repeat=repeat, warmup=warmup, threads=th,
                                  device=device, tile=tile, raw=raw, peak=peak, input_dtype=input_dtype,
                                  precision=precision, fidelity=fidelity,
                                  calibration=calibration if precision == "int8" else None)
                    if isolate:
                        res = _run_isolated({"backend": name, "model": model, **kwargs}, timeout)
                    else:
                        res = bench_backend(name, model, **{**kwargs, "size": tuple(hw)})
                    results.append(res)
                    if progress is not None:
                        progress(res)
    return results


def precision_summary(results: Sequence[BenchResult]) -> list[str]:
    """For each reduced-precision row: its median over the fastest fp32 row of the same size
    and threads in the same run, and its PSNR against fp32."""
    lines = []
    for r in results:
        if r.status != "ok" or r.precision == "fp32" or r.median_ms is None:
            continue
        fp32 = [f for f in results if f.status == "ok" and f.precision == "fp32" and f.size == r.size
                and f.threads == r.threads and f.median_ms is not None]
        if not fp32:
            continue
        best = min(fp32, key=lambda f: f.median_ms)
        db = "n/a" if r.psnr_vs_fp32 is None else f"{r.psnr_vs_fp32:.1f} dB"
        lines.append(f"{_label(r)} {r.size}: {r.median_ms:.1f} ms = {r.median_ms / best.median_ms:.2f}x "
                     f"the fastest fp32 ({_label(best)}, {best.median_ms:.1f} ms); worst PSNR vs fp32 {db}")
    return lines


# -- reporting --------------------------------------------------------------------------------
def environment(threads: int | None = None) -> dict[str, Any]:
    """Date, CPU, peak estimate and versions, to publish next to any table."""
    from ._version import __version__
    from .backends import available

    cpu = cpu_info()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dermsr": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": asdict(cpu),
        "peak_gflops": peak_gflops(threads, cpu),
        "peak_method": "cores × clock × fp32 FLOP/cycle of the widest FMA (see dermsr.bench.simd_flops_per_cycle)",
        "runtimes": {a.name: (a.version if a.available else None) for a in available()},
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


TABLE_COLUMNS = (
    "runtime", "size", "thr", "tiles", "median ms", "min ms", "max ms", "init ms", "img/s",
    "in-MP/s", "peak MB", "raw ms", "overhead", "GFLOP/img", "GFLOP/s", "% peak", "dB vs fp32",
)


def _label(r: BenchResult) -> str:
    """``backend`` (``auto→resolved``), with ``/precision`` unless fp32."""
    name = r.backend if r.backend == r.resolved_backend or not r.resolved_backend else f"{r.backend}→{r.resolved_backend}"
    return name if r.precision == "fp32" else f"{name}/{r.precision}"


def table_rows(results: Sequence[BenchResult]) -> list[list[str]]:
    """One row of strings per result (skipped/error rows carry the reason)."""
    rows = []
    for r in results:
        name = _label(r)
        thr = "default" if r.threads is None else str(r.threads)
        if r.status != "ok":
            rows.append([name, r.size, thr, f"{r.status}: {r.reason}"])
            continue
        rows.append([
            name, r.size, thr, str(r.tiles), _f(r.median_ms, ".1f"), _f(r.min_ms, ".1f"),
            _f(r.max_ms, ".1f"), _f(r.init_ms, ".0f"), _f(r.images_per_s, ".2f"),
            _f(r.input_mpix_per_s, ".3f"), _f(r.peak_rss_mb, ".0f"), _f(r.raw_median_ms, ".1f"),
            _f(r.overhead, ".3f") + ("x" if r.overhead is not None else ""),
            _f(r.gflops_per_image, ".1f"), _f(r.gflops_per_s, ".1f"),
            _f(None if r.peak_fraction is None else 100 * r.peak_fraction, ".0f"),
            _f(r.psnr_vs_fp32, ".1f"),
        ])
    return rows


def format_table(results: Sequence[BenchResult], markdown: bool = False) -> str:
    """A fixed-width (or Markdown) table of results.

    >>> print(format_table([BenchResult("x", "8", 8, 8, status="skipped", reason="absent")]))
    runtime  size  thr      status
    x        8     default  skipped: absent
    """
    rows = table_rows(results)
    full = [r for r in rows if len(r) == len(TABLE_COLUMNS)]
    header = list(TABLE_COLUMNS) if full else [*TABLE_COLUMNS[:3], "status"]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            cells = r if len(r) == len(header) else [*r[:3], r[3], *[""] * (len(header) - 4)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    widths = [len(c) for c in header]
    for r in rows:
        for i, c in enumerate(r if len(r) == len(header) else r[:3]):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(header)).rstrip()]
    for r in rows:
        if len(r) == len(header):
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        else:
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:3])) + "  " + r[3])
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the isolated worker
    sys.exit(_worker(sys.argv[1]))
