"""Evaluation: metrics, pairwise comparisons, visual analysis and repeated-run consistency.

Functions and small option-holding classes (see docs/evaluation.md for exact definitions):

- :mod:`~dermsr.evaluate.metrics`: :func:`mse`, :func:`psnr`, :func:`ssim`, :func:`sharpness`
- :mod:`~dermsr.evaluate.lpips`: :func:`lpips_distance` (AlexNet from a local file)
- :mod:`~dermsr.evaluate.features`: :func:`feature_distance` (the same AlexNet's relu5 features)
- :mod:`~dermsr.evaluate.visual`: grey-level histograms, difference maps, qualitative grid
- :mod:`~dermsr.evaluate.consistency`: :func:`check_consistency` over repeated runs
- :class:`Evaluator`: one set of options for all of the above

Importing this package imports no deep-learning runtime and no matplotlib.
"""

from __future__ import annotations

from .consistency import ConsistencyReport, RunRecord, check_consistency, check_many
from .evaluator import METRICS, Evaluator
from .features import FeatureDistance, feature_distance
from .lpips import LPIPS, lpips_distance
from .metrics import MSE, PSNR, SSIM, Sharpness, mse, psnr, rgb_to_y, sharpness, ssim
from .visual import (
    difference_figure,
    difference_map,
    histogram_figure,
    intensity_histogram,
    intensity_histograms,
    qualitative_grid,
    save_figure,
)

__all__ = [
    "LPIPS",
    "METRICS",
    "MSE",
    "PSNR",
    "SSIM",
    "ConsistencyReport",
    "Evaluator",
    "FeatureDistance",
    "RunRecord",
    "Sharpness",
    "check_consistency",
    "check_many",
    "difference_figure",
    "difference_map",
    "feature_distance",
    "histogram_figure",
    "intensity_histogram",
    "intensity_histograms",
    "lpips_distance",
    "mse",
    "psnr",
    "qualitative_grid",
    "rgb_to_y",
    "save_figure",
    "sharpness",
    "ssim",
]
