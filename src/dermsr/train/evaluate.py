"""Recompute the validation metrics of trained weights: ``python -m dermsr.train.evaluate``.

For every held-out image of the by-image split (:func:`dermsr.train.split_images` with the
training run's ``--seed`` and ``--val-fraction``) and every protocol:

* ``bicubic-x4``: HR = the image decoded and downsized (area) to a short side of
  ``hr_short_side`` (896, as in training); LR = ``Degrader.preset("bicubic-x4")`` of it
  (MATLAB-style antialiased bicubic ÷4).
* ``thesis``: LR = ``Degrader.preset("thesis")`` of the full-resolution image (224×224);
  HR = its central square crop resized to 896×896 with ``cv2.INTER_AREA`` (the ground truth
  of ``dermsr study``).

Each model's output (PyTorch backend, untiled below 512 px) and the bicubic baseline (LR
resized ×4 with ``cv2.INTER_CUBIC``, clipped) are scored against the HR with
:mod:`dermsr.evaluate`'s PSNR and SSIM (RGB, data range 1) and LPIPS (AlexNet v0.1, offline
backbone). The table in docs/model-card.md is this module's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["PROTOCOLS", "evaluate", "format_table", "main", "meets_targets", "protocol_pair"]

PROTOCOLS = ("bicubic-x4", "thesis")
#: Targets from the project issue: PSNR ≥ bicubic + 0.5 dB, SSIM ≥ bicubic, LPIPS ≤ 0.8 × bicubic.
TARGETS = {"psnr_gain_db": 0.5, "lpips_ratio": 0.8}


def protocol_pair(path: str | Path, protocol: str, *, hr_short_side: int = 896, scale: int = 4,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) float32 HWC in [0, 1] for one image under ``protocol``."""
    from ..degrade import Degrader
    from .data import as_pair, load_hr

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    img = load_hr(path, 0 if protocol == "thesis" else hr_short_side)
    return as_pair(Degrader.preset(protocol).apply(img, seed=seed), img, scale)


def meets_targets(model: dict[str, float], bicubic: dict[str, float]) -> dict[str, bool]:
    """Which of the issue's three targets ``model``'s mean metrics meet against bicubic's.

    >>> meets_targets({"psnr": 38.0, "ssim": 0.96, "lpips": 0.18}, {"psnr": 37.4, "ssim": 0.95, "lpips": 0.25})
    {'psnr': True, 'ssim': True, 'lpips': True}
    """
    out = {"psnr": model["psnr"] >= bicubic["psnr"] + TARGETS["psnr_gain_db"],
           "ssim": model["ssim"] >= bicubic["ssim"]}
    if "lpips" in model and "lpips" in bicubic:
        out["lpips"] = model["lpips"] <= TARGETS["lpips_ratio"] * bicubic["lpips"]
    return out


def evaluate(
    data: str | Path,
    models: Sequence[str],
    *,
    protocols: Sequence[str] = PROTOCOLS,
    val_fraction: float = 0.1,
    seed: int = 0,
    hr_short_side: int = 896,
    lpips_backbone: str | None = None,
    threads: int | None = None,
    max_images: int | None = None,
    all_images: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-image and mean metrics of ``models`` and bicubic on the held-out images of ``data``
    (``all_images=True``: on every image, for a folder no model was trained on)."""
    from tqdm import tqdm

    from ..enhance import Enhancer
    from .data import list_images, split_images
    from .loop import bicubic_upscale
    from .metrics import metric_functions

    root = Path(data)
    rel = {f.relative_to(root).as_posix(): f for f in list_images(root)}
    split = split_images(list(rel), val_fraction, seed)
    pool = sorted(rel) if all_images else split.val
    names = pool[:max_images] if max_images else pool
    if not names:
        raise InputError(f"no held-out images: val_fraction={val_fraction} over {len(rel)} images")
    fns = metric_functions(lpips_backbone)
    enhancers = {m: Enhancer(m, backend="torch", threads=threads) for m in models}
    scale = {e.scale for e in enhancers.values()} or {4}
    if len(scale) != 1:
        raise InputError(f"models of different scales: {sorted(scale)}")
    s = scale.pop()
    rows: list[dict[str, Any]] = []
    jobs = [(n, p) for n in names for p in protocols]
    for name, protocol in tqdm(jobs, desc="evaluating", unit="pair", disable=not progress, file=sys.stderr):
        lr, hr = protocol_pair(rel[name], protocol, hr_short_side=hr_short_side, scale=s, seed=seed)
        outputs = {"bicubic": bicubic_upscale(lr, s)}
        for m, enh in enhancers.items():
            outputs[m] = enh.enhance(lr)
        for method, out in outputs.items():
            row = {"image": name, "protocol": protocol, "method": method}
            row.update({k: fn(out, hr) for k, fn in fns.items()})
            rows.append(row)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for protocol in protocols:
        summary[protocol] = {}
        for method in ["bicubic", *models]:
            sel = [r for r in rows if r["protocol"] == protocol and r["method"] == method]
            summary[protocol][method] = {k: float(np.mean([r[k] for r in sel])) for k in fns}
    verdicts = {p: {m: meets_targets(summary[p][m], summary[p]["bicubic"]) for m in models} for p in protocols}
    return {
        "settings": {"data": str(data), "val_fraction": None if all_images else val_fraction, "seed": seed,
                     "hr_short_side": hr_short_side, "protocols": list(protocols), "models": list(models),
                     "images": names},
        "summary": summary,
        "targets_met": verdicts,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The summary as a Markdown table (mean over the held-out images)."""
    metrics = list(next(iter(next(iter(result["summary"].values())).values())))
    head = "| protocol | method | " + " | ".join(m.upper() if m != "ssim" else "SSIM" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (2 + len(metrics))]
    fmt = {"psnr": "{:.2f} dB", "ssim": "{:.4f}", "lpips": "{:.4f}"}
    for protocol, methods in result["summary"].items():
        for method, vals in methods.items():
            cells = " | ".join(fmt.get(k, "{:.4f}").format(vals[k]) for k in metrics)
            lines.append(f"| {protocol} | {method} | {cells} |")
    n = len(result["settings"]["images"])
    lines.append(f"\nMean over {n} image(s).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dermsr.train.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the training data folder")
    p.add_argument("--model", action="append", required=True,
                   help="model name or weights file (repeat for several)")
    p.add_argument("--protocol", action="append", choices=PROTOCOLS, help="default: both")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hr-short-side", type=int, default=896)
    p.add_argument("--lpips-backbone", default=None, help="AlexNet backbone file (or $DERMSR_LPIPS_BACKBONE)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--all-images", action="store_true",
                   help="score every image (a folder not used for training), not only the held-out split")
    p.add_argument("--json", type=Path, default=None, help="write all numbers here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    result = evaluate(args.data, args.model, protocols=args.protocol or PROTOCOLS,
                      val_fraction=args.val_fraction, seed=args.seed, hr_short_side=args.hr_short_side,
                      lpips_backbone=args.lpips_backbone, threads=args.threads,
                      max_images=args.max_images, all_images=args.all_images, progress=not args.quiet)
    if args.json:
        from ..io import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(result, indent=2).encode())
    print(format_table(result))
    for protocol, per_model in result["targets_met"].items():
        for model, met in per_model.items():
            print(f"{protocol} {model}: targets met: {met}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
