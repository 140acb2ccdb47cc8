"""How much tile context reproduces a model's untiled output (docs/enhancement.md#tiling-rrdbnet).

For each image (centre square, resized to ``--side``²) the whole output is computed once with
torch; then a window of a 32×32 core plus ``p`` pixels of context on each side is run alone,
as a tile would be, and its core is compared with the same pixels of the whole output:
largest absolute difference on [0, 1], PSNR, and the share of uint8 values that change.

    python benchmarks/tile_context.py --model realesrgan-x4plus --side 352 --contexts 32,64,96,128 \\
        src/dermsr/data/samples/ISIC_0000062.jpg
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import torch

from dermsr.io import read_image
from dermsr.models import load_model

CORE = 32


def square(path: str, side: int) -> np.ndarray:
    img = read_image(path)
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def measure(net, img: np.ndarray, contexts: list[int], scale: int) -> dict[int, dict[str, float]]:
    x = torch.from_numpy((img.astype(np.float32) / 255).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        whole = net(x).numpy()
    c = img.shape[0] // 2
    lo, hi = c - CORE // 2, c + CORE // 2
    ref = whole[:, :, scale * lo:scale * hi, scale * lo:scale * hi]
    out = {}
    for p in contexts:
        if lo - p < 0 or hi + p > img.shape[0]:
            raise SystemExit(f"--side {img.shape[0]} is too small for a context of {p}")
        with torch.no_grad():
            tile = net(x[:, :, lo - p:hi + p, lo - p:hi + p]).numpy()
        core = tile[:, :, scale * p:scale * (p + CORE), scale * p:scale * (p + CORE)]
        d = np.abs(core - ref)
        mse = float((d.astype(np.float64) ** 2).mean())
        changed = np.round(np.clip(core, 0, 1) * 255) != np.round(np.clip(ref, 0, 1) * 255)
        out[p] = {"max_abs": float(d.max()), "psnr_db": 10 * np.log10(1 / max(mse, 1e-20)),
                  "uint8_changed": float(changed.mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default="realesrgan-x4plus")
    ap.add_argument("--side", type=int, default=352)
    ap.add_argument("--contexts", default="16,32,48,64,96,128")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    net = model.to_torch()
    contexts = [int(c) for c in args.contexts.split(",")]
    results = {}
    for path in args.images:
        results[path] = measure(net, square(path, args.side), contexts, model.scale)
        for p, r in results[path].items():
            print(f"{path}  context {p:4d}: max {r['max_abs']:.2e}  {r['psnr_db']:.1f} dB  "
                  f"uint8 changed {100 * r['uint8_changed']:.2f} %", flush=True)
    print(json.dumps({"model": model.name, "tile_context": model.tile_context, "results": results}, indent=1))


if __name__ == "__main__":
    main()
