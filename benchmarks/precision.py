"""Reduced precision against fp32: speed (round-robin fresh processes) and fidelity.

Not an ASV suite: the script behind the precision tables of docs/performance.md.

Speed: every runtime × precision cell runs in a fresh process (``dermsr.bench``), and the
cells are visited round-robin ``--rounds`` times, so load drift on a shared machine hits every
cell alike; each cell's median over ``--repeat`` runs is taken, then the median over rounds,
and each reduced-precision cell's ratio to the fastest fp32 cell *of the same round*.

Fidelity: every cell's Enhancer against PyTorch fp32 on held-out images (``--held-out DIR``,
full-resolution images never used for calibration; each downsized to short side 1024, a
central crop of up to 896 px, bicubic ÷4): the worst PSNR against fp32 over the images and
the mean PSNR against the ground truth, fp32 and reduced.

    python benchmarks/precision.py --held-out ../shared/data/dermoscopy --json precision.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

CELLS = [
    ("ncnn", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("torch", "fp32"),
    ("torch", "bf16"), ("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "int8"),
]


def speed(cells, size, rounds, repeat, model, calibration, threads=None):
    from dermsr.bench import run_benchmarks

    medians = {c: [] for c in cells}
    ratios = {c: [] for c in cells}
    for r in range(rounds):
        this = {}
        for backend, precision in cells:
            (res,) = run_benchmarks([backend], size, model=model, repeat=repeat, warmup=1, raw=False, threads=threads,
                                    precisions=[precision], calibration=calibration, fidelity=False)
            if res.status != "ok":
                print(f"  {backend}/{precision} {size}: {res.status}: {res.reason}", file=sys.stderr)
                continue
            this[(backend, precision)] = res.median_ms
            medians[(backend, precision)].append(res.median_ms)
            print(f"  round {r + 1} {backend}/{precision} {size}: {res.median_ms:.1f} ms "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        fp32 = [v for (b, p), v in this.items() if p == "fp32"]
        for c, v in this.items():
            if fp32:
                ratios[c].append(v / min(fp32))
    return {f"{b}/{p}": {"median_ms": statistics.median(medians[(b, p)]) if medians[(b, p)] else None,
                         "round_medians_ms": medians[(b, p)],
                         "ratio_to_fastest_fp32": statistics.median(ratios[(b, p)]) if ratios[(b, p)] else None}
            for b, p in cells}


def fidelity(cells, held_out, model, calibration):
    import numpy as np

    from dermsr import Enhancer
    from dermsr.data.folders import list_images, load_hr
    from dermsr.degrade.presets import bicubic_x4
    from dermsr.export.quantize import psnr

    pairs = []
    for path in list_images(held_out):
        hr = load_hr(path, 1024)
        h, w = hr.shape[:2]
        c = min(896, h, w) // 4 * 4
        y, x = (h - c) // 2, (w - c) // 2
        res = bicubic_x4().apply(hr[y : y + c, x : x + c], seed=0)
        pairs.append((path.name, *(np.ascontiguousarray(a.astype(np.float32).transpose(2, 0, 1)[None] / 255)
                                   for a in (res.lr, res.hr))))
    reference = Enhancer(model, backend="torch")
    ref = {name: reference.run(lr) for name, lr, _ in pairs}
    out = {}
    for backend, precision in cells:
        try:
            e = Enhancer(model, backend=backend, precision=precision,
                         calibration=calibration if precision == "int8" else None)
            ys = {name: e.run(lr) for name, lr, _ in pairs}
        except Exception as exc:  # a cell that cannot run here is reported, not fatal
            out[f"{backend}/{precision}"] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        vs = {n: psnr(ys[n], ref[n]) for n in ys}
        gt = [psnr(ys[n], hr) for n, _, hr in pairs]
        gt_ref = [psnr(ref[n], hr) for n, _, hr in pairs]
        out[f"{backend}/{precision}"] = {
            "min_psnr_vs_fp32": min(vs.values()), "per_image": vs,
            "psnr_gt": statistics.fmean(gt), "psnr_gt_fp32": statistics.fmean(gt_ref),
            "delta_psnr_gt": statistics.fmean(gt) - statistics.fmean(gt_ref),
            "gate": (getattr(e.session, "quantization", None) or {}).get("fidelity"),
        }
        print(f"  {backend}/{precision}: worst {min(vs.values()):.2f} dB vs fp32, "
              f"ΔPSNR vs GT {out[f'{backend}/{precision}']['delta_psnr_gt']:+.3f}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="224")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: each runtime's own)")
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--cells", default=",".join(f"{b}/{q}" for b, q in CELLS))
    p.add_argument("--model", default=None)
    p.add_argument("--calibration", default=None, help="int8 calibration folder (default: bundled)")
    p.add_argument("--held-out", type=Path, default=None, help="folder of held-out images for fidelity")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    cells = [tuple(c.split("/")) for c in args.cells.split(",")]
    result = {"loadavg_start": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}
    if not args.no_speed:
        result["speed"] = {s: speed(cells, s, args.rounds, args.repeat, args.model, args.calibration, args.threads)
                           for s in args.sizes.split(",")}
    if args.held_out:
        result["fidelity"] = fidelity(cells, args.held_out, args.model, args.calibration)
    result["loadavg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
