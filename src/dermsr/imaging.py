"""Image dtype facts and the conversions every layer shares (NumPy only).

The library's one convention inside is float32 in [0, 1]; integer images are uint8 (full
scale 255) or uint16 (65535). These are the only places that scale integers to floats and
move channels between NCHW and HWC; the Enhancer's edge conversions
(:mod:`dermsr.enhance.convert`), the degradations, training, scoring and the study use them.

>>> uint_to_float(np.array([0, 51, 255], np.uint8))
array([0. , 0.2, 1. ], dtype=float32)
>>> to_float32(np.array([1.5, -0.1]), clip=True)
array([1., 0.], dtype=float32)
>>> nchw_to_hwc(np.zeros((1, 3, 4, 5), np.float32)).shape
(4, 5, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["UINT_MAX", "is_uint", "nchw_to_hwc", "to_float32", "uint_to_float"]

#: Full-scale value of each integer image dtype.
UINT_MAX: dict[np.dtype, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def is_uint(dtype: Any) -> bool:
    """Whether ``dtype`` is one of the integer image dtypes (uint8, uint16).

    >>> is_uint(np.uint8), is_uint(np.float32)
    (True, False)
    """
    try:
        return np.dtype(dtype) in UINT_MAX
    except TypeError:  # a torch dtype
        return False


def uint_to_float(arr: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """uint8/uint16 → ``dtype`` in [0, 1], divided by the full-scale value (a new array)."""
    top = UINT_MAX.get(arr.dtype)
    if top is None:
        raise InputError(f"expected a uint8 or uint16 image, got dtype {arr.dtype}")
    dt = np.dtype(dtype)
    return arr.astype(dt) / dt.type(top)


def to_float32(arr: Any, *, clip: bool = False) -> np.ndarray:
    """uint8/uint16 scaled to [0, 1], floats as float32 (``clip=True`` clips them to [0, 1])."""
    a = np.asarray(arr)
    if a.dtype in UINT_MAX:
        return uint_to_float(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"expected a uint8, uint16 or float image, got dtype {a.dtype}")
    out = a.astype(np.float32, copy=False)
    return np.clip(out, 0.0, 1.0) if clip else out


def nchw_to_hwc(x: Any) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) → C-contiguous float32 (H, W, C)."""
    a = np.asarray(x)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise InputError(f"expected one image (1, C, H, W), got a batch of shape {a.shape}")
        a = a[0]
    if a.ndim != 3:
        raise InputError(f"expected (1, C, H, W) or (C, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a.transpose(1, 2, 0), dtype=np.float32)
