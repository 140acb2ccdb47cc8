"""A degradation's output as an aligned (LR, HR) float pair, whatever form it came in.

Training (:mod:`dermsr.train.data`) and scoring (:mod:`dermsr.evaluate.scorecard`) both turn
``Degrader.apply`` results, ``(lr, hr)`` tuples or bare LR images into float32 HWC pairs with
``hr = lr × scale``; this is the one place that does it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..imaging import to_float32

__all__ = ["as_pair", "to_float"]


def to_float(img: Any) -> np.ndarray:
    """uint8 / uint16 / float HWC → float32 HWC in [0, 1] (floats are clipped, not rescaled)."""
    arr = np.asarray(img)
    if not (arr.dtype in (np.uint8, np.uint16) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"degradation returned a {arr.dtype} image; expected uint8, uint16 or float")
    return to_float32(arr, clip=True)


def _hwc(img: np.ndarray) -> np.ndarray:
    """HWC from HW, HWC, CHW-with-batch (1, C, H, W) or CHW float arrays (Degrader's NCHW output)."""
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise InputError(f"degradation returned a batch of {img.shape[0]} images; expected one")
        img = img[0].transpose(1, 2, 0)
    elif img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 3, 4):
        img = img.transpose(1, 2, 0)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img[:, :, :3]


def as_pair(result: Any, hr_in: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a degradation's output to float32 HWC ``(lr, hr)`` with ``hr = lr × scale``.

    If the returned HR is not exactly ``scale`` × the LR: a surplus of fewer than ``scale``
    pixels is trimmed (bottom/right); otherwise, when the aspect ratios agree within 2 %, the
    HR is resized to ``scale`` × the LR with OpenCV's ``INTER_AREA`` (the ground truth of
    ``dermsr study``). This is the pair the ``thesis`` protocol implies: LR = the 224² thesis
    output, HR = the central square crop resized to 896² (= 4 × 224).
    """
    if isinstance(result, tuple) and len(result) == 2:
        lr, hr = result
    elif hasattr(result, "lr") and hasattr(result, "hr"):
        lr, hr = result.lr, result.hr
    else:
        lr, hr = result, hr_in
    lr, hr = _hwc(to_float(lr)), _hwc(to_float(hr))
    lh, lw = lr.shape[:2]
    th, tw = lh * scale, lw * scale
    hh, hw = hr.shape[:2]
    if (hh, hw) != (th, tw):
        if th <= hh < th + scale and tw <= hw < tw + scale:
            hr = hr[:th, :tw]
        elif abs((hh / hw) / (th / tw) - 1.0) <= 0.02:
            hr = np.clip(cv2.resize(hr, (tw, th), interpolation=cv2.INTER_AREA), 0.0, 1.0)
        else:
            raise InputError(
                f"degradation returned LR {lw}×{lh} and HR {hw}×{hh}; expected HR {tw}×{th} "
                f"(LR × {scale}) or the same aspect ratio"
            )
    return np.ascontiguousarray(lr, dtype=np.float32), np.ascontiguousarray(hr, dtype=np.float32)
