"""The study's figures: each model's runtimes (histograms, difference maps, grids, as the thesis
drew them) and every model side by side on the same crop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np


def slug(text: str) -> str:
    """``text`` made safe for a file name.

    >>> slug("dermsr-blind-x4"), slug("my model/v2")
    ('dermsr-blind-x4', 'my_model_v2')
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


class _Saver:
    def __init__(self, out_dir: Path, image: str, dpi: int) -> None:
        self.out_dir, self.image, self.dpi = out_dir, image, dpi
        self.made: list[dict[str, Any]] = []

    def __call__(self, fig: Any, stem: str, kind: str, caption: str, model: str | None = None,
                 backend: str | None = None) -> None:
        from .. import visual

        file = f"figures/{self.image}-{stem}.png"
        visual.save_figure(fig, self.out_dir / file, dpi=self.dpi)
        self.made.append({"kind": kind, "image": self.image, "model": model, "backend": backend, "file": file,
                          "caption": caption})


def draw_runtime_figures(out_dir: Path, name: str, lr: np.ndarray, gt: np.ndarray, baseline: np.ndarray,
                         outputs: dict[str, np.ndarray], reference: str | None, dpi: int,
                         model: str) -> list[dict[str, Any]]:
    """One model on every runtime: histograms, difference maps against ``reference`` and the
    qualitative grid, as PNGs."""
    from .. import visual

    save = _Saver(out_dir, name, dpi)
    stem = slug(model)
    images = {"ground truth": gt, **outputs, "bicubic": baseline}
    save(visual.histogram_figure(visual.intensity_histograms(images),
                                 title=f"{name}, {model}: grey-level histograms"),
         f"{stem}-histogram", "histogram", f"{name}: grey-level intensity histograms of the ground truth, "
         f"`{model}`'s output on every runtime and the bicubic baseline", model)
    if reference in outputs:
        for backend, y in outputs.items():
            if backend == reference:
                continue
            # colour scale up to this pair's largest difference, so sub-grey-level differences
            # show their pattern; the caption and the bar give the size
            top = float(np.abs(outputs[reference] - y).max()) * 255.0
            save(visual.difference_figure(outputs[reference], y, vmax=top if top > 0 else 1.0,
                                          title=f"{name}, {model}: |{backend} − {reference}|"),
                 f"{stem}-diff-{slug(backend)}", "diff",
                 f"{name}: `{model}`, absolute difference {backend} vs {reference}, largest over channels; "
                 f"the colour scale runs from 0 to the largest difference, {top:.3g} grey levels of 255"
                 + (" (invisible in an 8-bit image)" if top < 0.5 else ""), model, backend)
    save(visual.qualitative_grid(lr, {**outputs, "bicubic": baseline}, gt), f"{stem}-grid", "grid",
         f"{name}: degraded input, `{model}`'s output on every runtime, the bicubic baseline and the ground "
         "truth (HR reference), with an enlarged central crop below", model)
    return save.made


def draw_model_figure(out_dir: Path, name: str, lr: np.ndarray, gt: np.ndarray, baseline: np.ndarray,
                      outputs: dict[str, tuple[str, np.ndarray]], dpi: int) -> list[dict[str, Any]]:
    """Every model (``label -> (runtime, output)``) beside bicubic and the ground truth, the same
    central crop enlarged below each."""
    from .. import visual

    if not outputs:
        return []
    save = _Saver(out_dir, name, dpi)
    panels = {"bicubic": baseline, **{label: y for label, (_, y) in outputs.items()}}
    save(visual.qualitative_grid(lr, panels, gt), "models", "models",
         f"{name}: the same central crop (a quarter of the side, enlarged below) of the degraded input, "
         "bicubic, each model (" + ", ".join(f"`{label}` on {b}" for label, (b, _) in outputs.items())
         + ") and the ground truth (HR reference). A faithful model looks like the ground truth; a "
         "perceptually sharp one may add detail the ground truth does not have")
    return save.made
