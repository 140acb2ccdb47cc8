"""Conversions at the edges: what users hold ↔ the one internal convention.

Inside dermsr an image is float32, NCHW, RGB, in [0, 1]. :func:`prepare` turns a user's
image (uint8/uint16/float HWC or HW arrays, RGBA, torch tensors) into that, and
:func:`restore` gives the result back in the same kind: same container, dtype, layout and
channel count, spatial size × scale.

Grayscale images run through the model as three equal channels; the output's channels are
averaged back to one. An alpha channel does not go through the model: it is resized with
bilinear interpolation (no overshoot, so an opaque alpha stays exactly opaque).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..imaging import UINT_MAX as _UINT_MAX
from ..imaging import is_uint, uint_to_float

__all__ = ["Prepared", "is_uint", "prepare", "restore", "to_uint", "uint_max"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class Prepared:
    x: np.ndarray  # float32 (N, 3, H, W) in [0, 1]
    alpha: np.ndarray | None  # float32 (N, H, W) in [0, 1]
    kind: str  # "numpy" or "torch"
    dtype: Any  # numpy dtype or torch dtype of the input
    layout: str  # "HW", "HWC", "CHW" or "NCHW"
    channels: int  # 1, 3 or 4 as given
    device: Any = None  # torch device


def _is_tensor(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("torch") and hasattr(obj, "detach")


def _check_float(arr: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} contains NaN or infinity; expected finite values in [0, 1]")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"{what} is a float image with values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] "
            "(divide uint8 data by 255, or pass the uint8 array itself)"
        )


def _to_unit_float(arr: np.ndarray, what: str) -> np.ndarray:
    dt = arr.dtype
    if dt in _UINT_MAX:
        return uint_to_float(arr)
    if dt in _FLOATS:
        _check_float(arr, what)
        return arr.astype(np.float32, copy=False)
    raise InputError(
        f"{what} has dtype {dt}; expected uint8, uint16, float16, float32 or float64"
    )


def prepare(image: Any) -> Prepared:
    """Validate a user image and convert it to float32 NCHW RGB [0, 1]."""
    if _is_tensor(image):
        return _prepare_tensor(image)
    if not isinstance(image, np.ndarray):
        raise InputError(
            "expected an image as a NumPy array, a torch tensor or a file path, "
            f"got {type(image).__name__}"
        )
    if image.size == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    if image.ndim == 2:
        layout, hwc = "HW", image[:, :, None]
    elif image.ndim == 3 and image.shape[2] in (1, 3, 4):
        layout, hwc = "HWC", image
    else:
        raise InputError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    channels = hwc.shape[2]
    f = _to_unit_float(hwc, "image")
    chw = np.ascontiguousarray(f.transpose(2, 0, 1))[None]
    x, alpha = _split_channels(chw)
    return Prepared(x, alpha, "numpy", image.dtype, layout, channels)


def _split_channels(nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    c = nchw.shape[1]
    if c == 1:
        return np.ascontiguousarray(np.repeat(nchw, 3, axis=1)), None
    if c == 3:
        return np.ascontiguousarray(nchw), None
    return np.ascontiguousarray(nchw[:, :3]), np.ascontiguousarray(nchw[:, 3])


def _prepare_tensor(t: Any) -> Prepared:
    import torch

    if t.ndim == 3:
        layout = "CHW"
        batch = t[None]
    elif t.ndim == 4:
        layout, batch = "NCHW", t
    else:
        raise InputError(f"expected a CHW or NCHW tensor, got shape {tuple(t.shape)}")
    if batch.numel() == 0:
        raise InputError(f"tensor is empty (shape {tuple(t.shape)})")
    c = batch.shape[1]
    if c not in (1, 3, 4):
        raise InputError(f"expected 1, 3 or 4 channels in dim 1 of an NCHW tensor, got {c} (shape {tuple(t.shape)})")
    if t.dtype not in (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise InputError(f"tensor has dtype {t.dtype}; expected uint8 or a float dtype in [0, 1]")
    arr = batch.detach().to("cpu")
    if arr.dtype == torch.bfloat16:
        arr = arr.float()
    f = _to_unit_float(arr.numpy(), "tensor")
    x, alpha = _split_channels(np.ascontiguousarray(f))
    return Prepared(x, alpha, "torch", t.dtype, layout, c, t.device)


def uint_max(dtype: Any) -> float:
    """The value of white in an integer image dtype.

    >>> uint_max(np.uint8), uint_max(np.uint16)
    (255.0, 65535.0)
    """
    return _UINT_MAX[np.dtype(dtype)]


def to_uint(y: np.ndarray, dtype: Any, *, scratch: bool = False) -> np.ndarray:
    """[0, 1] floats → C-contiguous uint8/uint16, rounding to nearest (values clipped first).

    ``scratch=True`` lets the conversion work in ``y`` itself (``y`` must be a writable float
    array that the caller no longer needs): no float temporary, so converting a 2048×1536 ×4
    result (604 MB as float32) costs only the 151 MB uint8 output.

    >>> to_uint(np.array([0.0, 0.5, 0.999, 1.7], np.float32), np.uint8)
    array([  0, 128, 255, 255], dtype=uint8)
    """
    top = _UINT_MAX[np.dtype(dtype)]
    z = y if scratch else np.array(y, dtype=np.float32)
    np.clip(z, 0.0, 1.0, out=z)
    np.multiply(z, top, out=z)
    np.rint(z, out=z)
    return z.astype(dtype, order="C")


def _resize_alpha(alpha: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    h, w = out_hw
    return np.stack(
        [np.clip(cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0) for a in alpha]
    )


def restore(y: np.ndarray, prep: Prepared) -> Any:
    """Give a float32 NCHW RGB [0, 1] result back in the kind ``prep`` was made from.

    ``y`` is used as scratch space (it may be modified): pass a result nobody else reads.
    Integer outputs are converted in place and transposed in the one copy that makes the
    output, so a large photo needs no float temporaries besides ``y`` itself.
    """
    out_hw = y.shape[2:]
    if prep.channels == 1:
        y = y.mean(axis=1, keepdims=True)
    elif prep.channels == 4:
        if prep.alpha is None:  # pragma: no cover - prepare always sets it for 4 channels
            raise InputError("RGBA input lost its alpha channel")
        y = np.concatenate([y, _resize_alpha(prep.alpha, out_hw)[:, None]], axis=1)
    if prep.kind == "torch":
        import torch

        if prep.dtype == torch.uint8:
            t = torch.from_numpy(to_uint(y, np.uint8, scratch=True))
        else:
            t = torch.from_numpy(np.ascontiguousarray(y)).to(prep.dtype)
        t = t.to(prep.device)
        return t[0] if prep.layout == "CHW" else t
    hwc_view = y[0].transpose(1, 2, 0)  # HWC view; the conversion below makes the one copy
    if is_uint(prep.dtype):
        hwc = to_uint(hwc_view, prep.dtype, scratch=True)
    else:
        hwc = hwc_view.astype(prep.dtype, order="C")
    if prep.layout == "HW":
        return hwc[:, :, 0]
    return hwc
