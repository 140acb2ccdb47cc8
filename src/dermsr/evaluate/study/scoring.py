"""Scoring against the ground truth: the reference, the bicubic baseline, the verdict, the metrics."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ...imaging import nchw_to_hwc as _hwc
from ...imaging import to_float32 as _to_float01
from .config import BICUBIC, HIGHER_IS_BETTER, METRICS


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
    from ..scorecard import upscale

    return upscale(_hwc(lr), scale, "bicubic")

def enhancement_verdict(truth: Sequence[dict[str, Any]], method: str, backend: str | None = None) -> dict[str, Any]:
    """Does ``method`` beat the bicubic baseline against the ground truth?

    For each metric present: the mean over images of ``method`` and of the baseline, how many
    images ``method`` wins, and whether it is better on the mean. ``verdict`` is "helps"
    (better on every metric), "does not help" (better on none) or "mixed". A study's rows carry
    a model (``method``) on one runtime each (``backend``); ``backend`` picks the runtime's rows
    (None: the rows of ``method`` whatever their runtime).

    >>> rows = [{"image": "a", "method": "torch", "psnr": 30.0, "ssim": 0.9},
    ...         {"image": "a", "method": "bicubic", "psnr": 31.0, "ssim": 0.8}]
    >>> v = enhancement_verdict(rows, "torch")
    >>> v["verdict"], v["metrics"]["psnr"]["better"], v["metrics"]["ssim"]["wins"]
    ('mixed', False, 1)
    """
    mine = {r["image"]: r for r in truth
            if r.get("method") == method and (backend is None or r.get("backend") == backend)}
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
    return {"method": method, "backend": backend, "baseline": BICUBIC, "verdict": verdict, "metrics": per_metric}

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

# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
class _Scorer:
    """An :class:`~dermsr.evaluate.Evaluator` with LPIPS when its backbone can be found.

    The backbone is resolved and the network built up front, so a missing or bad file turns
    LPIPS off with its reason (reported) instead of failing half-way through the study.
    """

    def __init__(self, backbone: str | None) -> None:
        from ..evaluator import Evaluator

        self.lpips_error: str | None = None
        self.lpips_source: str | None = None
        metrics: tuple[str, ...] = METRICS
        try:
            from ..lpips import lpips_network, resolve_backbone

            source = resolve_backbone(backbone)
            lpips_network(source.path)
            self.lpips_source = str(source)
            backbone = str(source.path)
        except Exception as exc:  # no weights offline, bad file, lpips not installed
            self.lpips_error = f"{type(exc).__name__}: {exc}"
            # the feature distance runs the same AlexNet trunk with the same extra: off together
            metrics = tuple(m for m in METRICS if m not in ("lpips", "feature_distance"))
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

def _sane_range() -> tuple[float, float]:
    from ...enhance.enhancer import SANE_RANGE

    return SANE_RANGE
