"""One table of metric facts: label, table format and direction, read by the Evaluator, the
study, its report and ``dermsr evaluate`` (so adding a metric is one row here).

>>> METRIC_INFO["psnr"].label, METRIC_INFO["psnr"].higher_is_better
('PSNR (dB)', True)
>>> better("lpips", 0.2, 0.3), better("psnr", 30.0, 31.0)
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIDELITY_METRICS", "METRIC_INFO", "MetricInfo", "better"]


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is named and shown, and which way is better (``None``: neither, e.g.
    sharpness, which is not a measure of fidelity)."""

    name: str
    label: str
    fmt: str
    higher_is_better: bool | None


METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("mse", "MSE", ".3e", False),
    MetricInfo("psnr", "PSNR (dB)", ".2f", True),
    MetricInfo("ssim", "SSIM", ".6f", True),
    MetricInfo("lpips", "LPIPS", ".4g", False),
    MetricInfo("max_abs", "max |Δ|", ".3e", False),
    MetricInfo("mean_abs", "mean |Δ|", ".3e", False),
    MetricInfo("sharpness", "sharpness", ".1f", None),
)}

#: The full-reference metrics compared pairwise and against the ground truth, in the
#: reference study's table order (its Tables 2-5).
FIDELITY_METRICS = ("mse", "psnr", "ssim", "lpips")


def better(name: str, a: float, b: float) -> bool:
    """Whether value ``a`` of metric ``name`` is strictly better than ``b``."""
    higher = METRIC_INFO[name].higher_is_better
    if higher is None:
        raise ValueError(f"metric {name!r} has no better direction")
    return a > b if higher else a < b
