"""Validation and conversion of the images metrics receive.

Metrics accept what users hold and work on one form inside: float64 arrays of shape
(N, H, W, C) on the images' own value scale, plus the data range (the largest possible value
minus the smallest) that scale implies.

Accepted: NumPy arrays (H, W), (H, W, C) or (N, C, H, W); torch tensors (H, W), (C, H, W) or
(N, C, H, W); C is 1 (grey) or 3 (RGB). dtypes: uint8 (range 255), uint16 (65535) and floats
(range 1.0, values expected in [0, 1]). A 4-D input is a batch and gives one value per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["FLOAT_TOLERANCE", "Images", "Pair", "as_images", "as_pair", "dtype_range"]

#: How far float images may stray outside [0, 1] (a model's unclamped overshoot) before they
#: are taken for data on another scale, e.g. 0-255 floats, and refused.
FLOAT_TOLERANCE = 0.1

_INT_RANGE = {"uint8": 255.0, "uint16": 65535.0}
_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Images:
    """One validated input: ``data`` is float64 (N, H, W, C)."""

    data: np.ndarray
    dtype: str  # dtype name as given ("uint8", "float32", ...)
    batched: bool
    shape: tuple[int, ...]  # the shape as given, for messages


@dataclass(frozen=True)
class Pair:
    """Two validated inputs of the same shape and dtype, and their data range."""

    a: np.ndarray
    b: np.ndarray
    data_range: float
    batched: bool


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def dtype_range(dtype: str) -> float:
    """Data range implied by a dtype name: 255 for uint8, 65535 for uint16, 1.0 for floats.

    >>> dtype_range("uint8"), dtype_range("uint16"), dtype_range("float32")
    (255.0, 65535.0, 1.0)
    """
    if dtype in _INT_RANGE:
        return _INT_RANGE[dtype]
    if dtype in _FLOAT_NAMES:
        return 1.0
    raise InputError(f"unsupported dtype {dtype}; expected uint8, uint16 or a float dtype")


def _tensor_to_numpy(t: Any, what: str) -> tuple[np.ndarray, str, str]:
    """A torch tensor → (array, dtype name, layout); layout is 'HW', 'CHW' or 'NCHW'."""
    name = str(t.dtype).removeprefix("torch.")
    if name not in _INT_RANGE and name not in _FLOAT_NAMES:
        raise InputError(
            f"{what}: tensor dtype {t.dtype} is not supported; expected torch.uint8, "
            "torch.uint16 or a float dtype"
        )
    layouts = {2: "HW", 3: "CHW", 4: "NCHW"}
    if t.ndim not in layouts:
        raise InputError(
            f"{what}: expected a tensor of shape (H, W), (C, H, W) or (N, C, H, W), "
            f"got shape {tuple(t.shape)}"
        )
    t = t.detach().to("cpu")
    if name in ("bfloat16", "float16"):
        t = t.float()
    return t.numpy(), name, layouts[t.ndim]


def as_images(image: Any, what: str = "image") -> Images:
    """Validate one image or batch and convert it to float64 (N, H, W, C).

    >>> im = as_images(np.zeros((4, 5, 3), np.uint8))
    >>> im.data.shape, im.data.dtype, im.dtype, im.batched
    ((1, 4, 5, 3), dtype('float64'), 'uint8', False)
    >>> as_images(np.zeros((2, 3, 4, 5), np.float32)).data.shape
    (2, 4, 5, 3)
    """
    if _is_tensor(image):
        arr, dtype, layout = _tensor_to_numpy(image, what)
        shape = tuple(image.shape)
    elif isinstance(image, np.ndarray):
        arr, dtype = image, image.dtype.name
        shape = image.shape
        layouts = {2: "HW", 3: "HWC", 4: "NCHW"}
        if arr.ndim not in layouts:
            raise InputError(
                f"{what}: expected an array of shape (H, W), (H, W, C) or (N, C, H, W), got shape {shape}"
            )
        layout = layouts[arr.ndim]
        if dtype not in _INT_RANGE and dtype not in _FLOAT_NAMES:
            raise InputError(
                f"{what}: dtype {dtype} is not supported; expected uint8, uint16, float16, "
                "float32 or float64"
            )
    else:
        raise InputError(
            f"{what}: expected a NumPy array or a torch tensor, got {type(image).__name__}"
        )
    if arr.size == 0:
        raise InputError(f"{what}: image is empty (shape {shape})")
    if layout == "HW":
        nhwc = arr[None, :, :, None]
    elif layout == "HWC":
        nhwc = arr[None]
    elif layout == "CHW":
        nhwc = arr.transpose(1, 2, 0)[None]
    else:
        nhwc = arr.transpose(0, 2, 3, 1)
    channels = nhwc.shape[3]
    if channels not in (1, 3):
        where = "last" if layout == "HWC" else "channel"
        hint = " (RGBA: drop the alpha channel, e.g. image[..., :3])" if channels == 4 else ""
        raise InputError(
            f"{what}: expected 1 (grey) or 3 (RGB) channels in the {where} axis of a {layout} "
            f"input, got {channels} (shape {shape}){hint}"
        )
    data = nhwc.astype(np.float64)
    if dtype in _FLOAT_NAMES and not np.all(np.isfinite(data)):
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{what}: contains {bad} NaN or infinite value(s); expected finite values")
    return Images(data, dtype, layout == "NCHW", shape)


def _check_range(im: Images, what: str) -> None:
    lo, hi = float(im.data.min()), float(im.data.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        raise InputError(
            f"{what}: a {im.dtype} image with values in [{lo:.4g}, {hi:.4g}]; float images are "
            "expected in [0, 1] (pass data_range=255 for floats on the 0-255 scale, or the "
            "uint8 array itself)"
        )


def resolve_data_range(data_range: float | None, dtype: str) -> float:
    """``data_range`` if given (checked), else the range the dtype implies."""
    if data_range is None:
        return dtype_range(dtype)
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.integer, np.floating)):
        raise InputError(f"data_range must be None or a positive number, got {data_range!r}")
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"data_range must be a positive finite number, got {data_range!r}")
    return value


def as_single(image: Any, data_range: float | None, what: str = "image") -> tuple[Images, float]:
    """Validate one image (or batch) and resolve its data range."""
    im = as_images(image, what)
    if data_range is None and im.dtype in _FLOAT_NAMES:
        _check_range(im, what)
    return im, resolve_data_range(data_range, im.dtype)


def as_pair(a: Any, b: Any, data_range: float | None = None) -> Pair:
    """Validate two images for a full-reference metric: same shape, same dtype, finite.

    >>> p = as_pair(np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8))
    >>> p.a.shape, p.data_range, p.batched
    ((1, 8, 8, 1), 255.0, False)
    >>> as_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    Traceback (most recent call last):
    ...
    dermsr.errors.InputError: images differ in shape: a is (8, 8) but b is (8, 9); expected the same shape
    """
    ia = as_images(a, "a")
    ib = as_images(b, "b")
    if ia.dtype != ib.dtype:
        raise InputError(
            f"images differ in dtype: a is {ia.dtype} but b is {ib.dtype}; convert one so both "
            "share a dtype (the dtype sets the data range: uint8 255, uint16 65535, float 1.0)"
        )
    if ia.data.shape != ib.data.shape:
        raise InputError(
            f"images differ in shape: a is {ia.shape} but b is {ib.shape}; expected the same shape"
        )
    if data_range is None and ia.dtype in _FLOAT_NAMES:
        _check_range(ia, "a")
        _check_range(ib, "b")
    return Pair(ia.data, ib.data, resolve_data_range(data_range, ia.dtype), ia.batched or ib.batched)
