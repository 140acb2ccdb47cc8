"""One table of metric facts: label, unit, description, table format and direction, read by the Evaluator, the
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
    #: The unit of the value ("" when it has none), and what it measures, for tables and captions.
    unit: str = ""
    description: str = ""


METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("mse", "MSE", ".3e", False, "squared value units",
               "mean squared pixel difference"),
    MetricInfo("psnr", "PSNR (dB)", ".2f", True, "dB", "peak signal-to-noise ratio, 10·log10(L²/MSE)"),
    MetricInfo("ssim", "SSIM", ".6f", True, "", "structural similarity (Wang et al. 2004), 1 = identical"),
    MetricInfo("lpips", "LPIPS", ".4g", False, "",
               "learned perceptual distance (Zhang et al. 2018, AlexNet v0.1), 0 = identical"),
    MetricInfo("feature_distance", "feature distance", ".4g", False, "squared activations",
               "mean squared difference of ImageNet AlexNet relu5 features, 0 = identical"),
    MetricInfo("max_abs", "max |Δ|", ".3e", False, "value units",
               "largest absolute pixel difference, [0, 1] scale"),
    MetricInfo("mean_abs", "mean |Δ|", ".3e", False, "value units", "mean absolute pixel difference"),
    MetricInfo("sharpness", "sharpness", ".1f", None, "grey levels²",
               "variance of the Laplacian of the grey image; not a measure of fidelity"),
)}

#: The full-reference metrics compared pairwise and against the ground truth: the reference
#: study's table order (its Tables 2-5), then the feature distance, which it did not have.
FIDELITY_METRICS = ("mse", "psnr", "ssim", "lpips", "feature_distance")


def better(name: str, a: float, b: float) -> bool:
    """Whether value ``a`` of metric ``name`` is strictly better than ``b``."""
    higher = METRIC_INFO[name].higher_is_better
    if higher is None:
        raise ValueError(f"metric {name!r} has no better direction")
    return a > b if higher else a < b
