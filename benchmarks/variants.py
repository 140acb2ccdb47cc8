"""Runtime option variants for 224×224 → 896×896 with the default model: speed and agreement.

Reproduces the variant table of docs/performance.md::

    python benchmarks/variants.py [--repeat 7] [--size 224] [--only torch,ncnn] [--json FILE]

Every variant runs the same float32 NCHW input; its median time (``time.perf_counter``, after
two warm-up runs) and its output's max |diff| and PSNR against the plain PyTorch fp32 module
(NCHW, no dermsr code) are printed as a Markdown table. The variants of one runtime are timed
round-robin (one run of each, ``--repeat`` times over), so load drift on a shared machine hits
them alike; variants that change process-wide state (ExecuTorch's thread pool) are timed alone
afterwards. "Equivalent" means max |diff| <= 1e-4 and PSNR >= 60 dB (the project's
equivalence bounds). Variants that need a runtime that is not installed, or a backend module
that does not exist yet, are listed as skipped with the reason.

Each variant is a function ``(model, x) -> callable(x) -> ndarray`` built from the runtime's
own API, so the options are explicit here rather than hidden behind dermsr's defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]
VARIANTS: dict[str, list[tuple[str, Callable[..., Runner], bool]]] = {}


def variant(backend: str, name: str, *, solo: bool = False):
    """Register a variant; ``solo`` ones change process-wide state and are not interleaved."""

    def deco(fn):
        VARIANTS.setdefault(backend, []).append((name, fn, solo))
        return fn

    return deco


# -- PyTorch --------------------------------------------------------------------------------
def _torch_runner(model, *, threads=None, channels_last=False, mode="inference"):
    import torch

    net = model.to_torch()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    ctx = torch.inference_mode if mode == "inference" else torch.no_grad

    def run(x):
        before = torch.get_num_threads()
        if threads is not None:  # per call, so interleaved variants do not leak thread counts
            torch.set_num_threads(threads)
        try:
            with ctx():
                t = torch.from_numpy(x).contiguous(memory_format=fmt)
                return net(t).contiguous().numpy()
        finally:
            torch.set_num_threads(before)

    return run


@variant("torch", "dermsr default (Enhancer, inference_mode, channels_last)")
def _t_default(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="torch", tile=None).run


@variant("torch", "raw net, inference_mode, NCHW (dermsr's default before channels_last)")
def _t_nchw(model, x):
    return _torch_runner(model)


@variant("torch", "raw net, torch.no_grad instead of inference_mode")
def _t_nograd(model, x):
    return _torch_runner(model, mode="no_grad")


@variant("torch", "raw net, channels_last")
def _t_cl(model, x):
    return _torch_runner(model, channels_last=True)


@variant("torch", "raw net, 1 thread")
def _t_1(model, x):
    return _torch_runner(model, threads=1)


@variant("torch", "raw net, all cores (threads reset to os.cpu_count())")
def _t_all(model, x):
    import os

    return _torch_runner(model, threads=os.cpu_count() or 1)


# -- ONNX Runtime ---------------------------------------------------------------------------
def _ort_runner(model, *, level="ALL", threads=None, spinning=None):
    import os

    import onnxruntime as ort

    from dermsr.enhance.backends.onnxruntime import onnx_artifact

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{level}")
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    so.inter_op_num_threads = 1
    if spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    sess = ort.InferenceSession(str(onnx_artifact(model)), sess_options=so,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x})[0]

    return run


@variant("onnxruntime", "dermsr default (Enhancer)")
def _o_default(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="onnxruntime", tile=None).run


for _level in ("DISABLE_ALL", "ENABLE_BASIC", "ENABLE_EXTENDED", "ENABLE_ALL"):
    variant("onnxruntime", f"raw, graph_optimization_level={_level}")(
        lambda model, x, _level=_level: _ort_runner(model, level=_level))
variant("onnxruntime", "raw, ENABLE_ALL, 1 thread")(lambda model, x: _ort_runner(model, level="ENABLE_ALL", threads=1))
variant("onnxruntime", "raw, ENABLE_ALL, allow_spinning=0")(
    lambda model, x: _ort_runner(model, level="ENABLE_ALL", spinning=False))


# -- NCNN -----------------------------------------------------------------------------------
def _ncnn_runner(model, **opts):
    import os

    import ncnn

    from dermsr.enhance.backends.ncnn import ncnn_artifact

    param, binf = ncnn_artifact(model)
    net = ncnn.Net()
    o = net.opt
    o.num_threads = os.cpu_count() or 1
    o.use_vulkan_compute = False
    o.use_fp16_storage = o.use_fp16_packed = o.use_fp16_arithmetic = False
    o.use_bf16_storage = False
    for k, v in opts.items():
        setattr(o, k, v)
    if net.load_param(str(param)) != 0 or net.load_model(str(binf)) != 0:
        raise RuntimeError(f"ncnn could not load {param}")

    def run(x):
        src = np.ascontiguousarray(x[0])
        ex = net.create_extractor()
        mat = ncnn.Mat(src)
        ex.input("in0", mat)
        ret, out = ex.extract("out0")
        if ret != 0:
            raise RuntimeError(f"extract returned {ret}")
        y = np.array(out, copy=True)[None]
        del out, mat, ex, src
        return y

    return run


@variant("ncnn", "dermsr default (Enhancer)")
def _n_default(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="ncnn", tile=None).run


_NCNN_VARIANTS = {
    "raw, fp32, all defaults": {},
    "raw, use_winograd_convolution=False": {"use_winograd_convolution": False},
    "raw, winograd63 off (23/43 only)": {"use_winograd63_convolution": False},
    "raw, use_sgemm_convolution=False": {"use_sgemm_convolution": False},
    "raw, use_packing_layout=False": {"use_packing_layout": False},
    "raw, fp16 storage+packed (fp32 arithmetic)": {"use_fp16_storage": True, "use_fp16_packed": True},
    "raw, fp16 storage+packed+arithmetic": {"use_fp16_storage": True, "use_fp16_packed": True,
                                            "use_fp16_arithmetic": True},
    "raw, bf16 storage": {"use_bf16_storage": True},
    "raw, lightmode=False": {"lightmode": False},
    "raw, 1 thread": {"num_threads": 1},
    "raw, openmp_blocktime=0": {"openmp_blocktime": 0},
}
for _name, _opts in _NCNN_VARIANTS.items():
    variant("ncnn", _name)(lambda model, x, _opts=_opts: _ncnn_runner(model, **_opts))


# -- ExecuTorch -----------------------------------------------------------------------------
@variant("executorch", "dermsr default (Enhancer, dynamic-shape program)")
def _e_default(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="executorch", tile=None).run


@variant("executorch", "fixed-shape program (dynamic=False)")
def _e_fixed(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="executorch", tile=None, dynamic=False).run


@variant("executorch", "dynamic-shape program, 1 thread", solo=True)
def _e_1(model, x):
    from dermsr import Enhancer

    return Enhancer(model, backend="executorch", tile=None, threads=1).run


# -- measurement ----------------------------------------------------------------------------
def _timed(fn: Runner, x: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x)
    return (time.perf_counter() - t0) * 1000.0


def measure_round_robin(fns: list[Runner], x: np.ndarray, repeat: int) -> list[tuple[float, np.ndarray]]:
    """(median ms, first output) per runner: two warm-ups each, then ``repeat`` rounds of one
    timed run of every runner in turn."""
    outs = []
    for fn in fns:
        outs.append(np.asarray(fn(x), dtype=np.float32))
        fn(x)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            times[i].append(_timed(fn, x))
    return [(statistics.median(t), y) for t, y in zip(times, outs, strict=True)]


def reference(model, x: np.ndarray) -> np.ndarray:
    """The plain PyTorch fp32 module, NCHW, clamped: independent of every dermsr default."""
    import torch

    with torch.inference_mode():
        y = model.to_torch()(torch.from_numpy(x)).numpy()
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def agreement(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |diff|, PSNR dB) after clamping to [0, 1] as dermsr does."""
    from dermsr.evaluate.metrics import psnr

    y = np.clip(y, 0.0, 1.0).astype(np.float32)
    d = np.abs(y.astype(np.float64) - ref)
    return float(d.max()), float(np.asarray(psnr(y, ref, data_range=1.0)).ravel()[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--only", default=None, help="comma-separated backends")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from dermsr.bench import make_input
    from dermsr.models import load_model

    model = load_model()
    x = make_input(args.size, args.size)
    ref = reference(model, x)
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for backend, items in VARIANTS.items():
        if only and backend not in only:
            continue
        built: list[tuple[dict, Runner, bool]] = []
        for name, build, solo in items:
            row = {"backend": backend, "variant": name}
            rows.append(row)
            try:
                built.append((row, build(model, x), solo))
            except Exception as exc:  # a variant that cannot run here is reported, not fatal
                row.update(skipped=f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        groups = [[b for b in built if not b[2]]] + [[b] for b in built if b[2]]
        for group in groups:
            if not group:
                continue
            try:
                results = measure_round_robin([fn for _, fn, _ in group], x, args.repeat)
            except Exception as exc:
                for row, _, _ in group:
                    row.update(skipped=f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                continue
            for (row, _, solo), (med, y) in zip(group, results, strict=True):
                mx, psnr = agreement(y, ref)
                row.update(median_ms=med, max_abs=mx, psnr_db=psnr, interleaved=not solo,
                           equivalent=bool(mx <= 1e-4 and psnr >= 60))
                print(row, file=sys.stderr, flush=True)

    print(f"| backend | variant | median ms ({args.size}→{args.size * model.scale}) | max abs | PSNR dB | equivalent |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['backend']} | {r['variant']} | skipped: {r['skipped']} | | | |")
        else:
            print(f"| {r['backend']} | {r['variant']} | {r['median_ms']:.1f} | {r['max_abs']:.2e} | "
                  f"{r['psnr_db']:.1f} | {'yes' if r['equivalent'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
