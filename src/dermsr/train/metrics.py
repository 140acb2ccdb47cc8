"""Validation metrics for training, from :mod:`dermsr.evaluate` (PSNR, SSIM, and LPIPS when an
offline AlexNet backbone is configured through ``DERMSR_LPIPS_BACKBONE``).

Images are float32 HWC in [0, 1]; PSNR/SSIM are over RGB with ``data_range=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .losses import LPIPS_BACKBONE_ENV

__all__ = ["metric_functions"]


def metric_functions(lpips_backbone: str | None = None) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """``{"psnr": f, "ssim": f[, "lpips": f]}`` with ``f(output, reference) -> float``."""
    from ..evaluate import lpips_distance, psnr, ssim

    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "psnr": lambda a, b: float(psnr(a, b, data_range=1.0)),
        "ssim": lambda a, b: float(ssim(a, b, data_range=1.0)),
    }
    backbone = lpips_backbone or os.environ.get(LPIPS_BACKBONE_ENV)
    if backbone:
        fns["lpips"] = lambda a, b: float(lpips_distance(a, b, backbone=backbone, data_range=1.0,
                                                          allow_download=False))
    return fns
