"""Full-reference metrics (MSE, PSNR, SSIM) and a no-reference sharpness score.

(Longer than most modules on purpose: each metric is a function plus its options class, and
the SSIM variants used in papers are documented beside the one implementation.)

Every metric is a function plus a small class that holds its options. Inputs are what users
hold (see :mod:`dermsr.evaluate._images`): NumPy arrays (H, W) / (H, W, C), or (N, C, H, W)
batches; torch tensors (H, W), (C, H, W) or (N, C, H, W); uint8, uint16 or float in [0, 1].
A single image gives a Python float; a 4-D batch gives a float64 array with one value per
image. The data range *L* comes from the dtype (255 for uint8, 65535 for uint16, 1.0 for
floats) unless ``data_range`` is given.

Conventions used in super-resolution papers are options:

``crop_border``
    Ignore that many pixels along each edge (BasicSR's ``crop_border``; usually the scale).
``y_channel``
    Compare only the luma Y of ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` defines it:
    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` on the 0-255 scale, with R, G, B in [0, 1]
    (BasicSR's ``test_y_channel``). Y is computed without rounding, then put back on the
    input's own scale (Y·L/255) so *L* keeps its meaning. ``round_y=True`` rounds Y to an
    integer on the 0-255 scale first, as MATLAB does for uint8 images. A one-channel image
    is taken as luma already and left as it is (as BasicSR does).

All arithmetic is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_int
from ._images import Pair, as_pair, as_single

__all__ = [
    "MSE",
    "PSNR",
    "SSIM",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WIN",
    "Sharpness",
    "gaussian_window",
    "matlab_downsample",
    "matlab_downsample_factor",
    "mse",
    "psnr",
    "rgb_to_y",
    "sharpness",
    "ssim",
]

#: SSIM constants of Wang et al. 2004 ("Image quality assessment: from error visibility to
#: structural similarity", IEEE TIP 13(4)): an 11×11 circular-symmetric Gaussian window with
#: standard deviation 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

#: BT.601 luma coefficients on the 0-255 scale for R, G, B in [0, 1] (MATLAB ``rgb2ycbcr``).
_Y_COEFFS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0
#: BT.601 luma weights used for grey conversion (OpenCV ``COLOR_RGB2GRAY``).
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def _result(values: np.ndarray, batched: bool) -> float | np.ndarray:
    return values if batched else float(values[0])


def _check_crop(crop_border: int) -> int:
    return check_int(crop_border, "crop_border", lo=0)


def _crop(x: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border == 0:
        return x
    h, w = x.shape[1:3]
    if 2 * crop_border >= min(h, w):
        raise InputError(
            f"crop_border={crop_border} leaves nothing of a {h}×{w} image; expected "
            f"crop_border < {(min(h, w) + 1) // 2}"
        )
    return x[:, crop_border:-crop_border, crop_border:-crop_border, :]


def rgb_to_y(x: np.ndarray, data_range: float = 255.0, *, round_y: bool = False) -> np.ndarray:
    """BT.601 luma of RGB data (last axis), MATLAB ``rgb2ycbcr`` convention, on the input's scale.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B = x / data_range, a value on the
    0-255 scale (16 for black, 235 for white), returned as ``Y * data_range / 255`` with the
    channel axis kept (length 1). ``round_y`` rounds Y on the 0-255 scale (half away from zero,
    as MATLAB's ``round``) before rescaling.

    >>> rgb_to_y(np.array([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]))[:, 0]
    array([ 16., 235.])
    >>> float(rgb_to_y(np.array([1.0, 1.0, 1.0]), 1.0)[0] * 255)
    235.0
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != 3:
        raise InputError(f"rgb_to_y expects 3 channels in the last axis, got shape {x.shape}")
    y = _Y_OFFSET + (x / data_range) @ _Y_COEFFS
    if round_y:
        y = np.floor(y + 0.5)  # Y > 0 always, so this is round-half-away-from-zero
    if data_range != 255.0:
        y = y * (data_range / 255.0)
    return y[..., None]


def _preprocess(pair: Pair, crop_border: int, y_channel: bool, round_y: bool) -> tuple[np.ndarray, np.ndarray]:
    crop_border = _check_crop(crop_border)
    a, b = _crop(pair.a, crop_border), _crop(pair.b, crop_border)
    if y_channel and a.shape[3] == 3:
        a = rgb_to_y(a, pair.data_range, round_y=round_y)
        b = rgb_to_y(b, pair.data_range, round_y=round_y)
    return a, b


# ---------------------------------------------------------------------------------------------
# MSE and PSNR
# ---------------------------------------------------------------------------------------------
def mse(
    a: Any,
    b: Any,
    *,
    data_range: float | None = None,
    crop_border: int = 0,
    y_channel: bool = False,
    round_y: bool = False,
) -> float | np.ndarray:
    """Mean squared error over all pixels and channels, on the images' own value scale.

    ``MSE = mean((a - b)²)``: uint8 images give values on the 0-255² scale, floats on the
    [0, 1]² scale (as ``skimage.metrics.mean_squared_error``). ``data_range`` only matters
    with ``y_channel`` (it defines R, G, B in [0, 1]).

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 16
    >>> mse(a, b)
    16.0
    >>> bool(np.isclose(mse(a / 255, b / 255), 16.0 / 255**2))
    True
    """
    pair = as_pair(a, b, data_range)
    x, y = _preprocess(pair, crop_border, y_channel, round_y)
    d = x - y
    return _result(np.mean(d * d, axis=(1, 2, 3)), pair.batched)


def psnr(
    a: Any,
    b: Any,
    *,
    data_range: float | None = None,
    crop_border: int = 0,
    y_channel: bool = False,
    round_y: bool = False,
) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB: ``10·log10(L² / MSE)``.

    *L* is the data range (255 for uint8, 65535 for uint16, 1.0 for floats, or
    ``data_range``). Identical images have MSE 0 and give ``inf`` (no epsilon is added, so
    "identical" stays distinguishable from "very close").

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 16
    >>> round(psnr(a, b), 4)   # 10·log10(255² / 16)
    36.0896
    >>> psnr(a, a)
    inf
    """
    pair = as_pair(a, b, data_range)
    x, y = _preprocess(pair, crop_border, y_channel, round_y)
    d = x - y
    err = np.mean(d * d, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(pair.data_range**2 / err)
    return _result(values, pair.batched)


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------
def gaussian_window(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian ``exp(-k²/2σ²)``, k = -(size-1)/2 … (size-1)/2.

    Its outer product with itself is Wang et al.'s 2-D window (MATLAB
    ``fspecial('gaussian', 11, 1.5)``; the same as ``cv2.getGaussianKernel(11, 1.5)``).

    >>> w = gaussian_window(); w.shape, round(float(w.sum()), 12), round(float(w[5]), 6)
    ((11,), 1.0, 0.266012)
    """
    k = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(k * k) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation with ``g`` ⊗ ``g`` keeping only fully covered pixels ('valid')."""
    n = g.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(img, n, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, n, axis=1) @ g


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float, g: np.ndarray) -> float:
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    # population (biased) local statistics: E_w[x²] - E_w[x]², as in Wang's ssim.m
    var_x = _filter_valid(x * x, g) - mu_xx
    var_y = _filter_valid(y * y, g) - mu_yy
    cov = _filter_valid(x * y, g) - mu_xy
    num = (2.0 * mu_xy + c1) * (2.0 * cov + c2)
    den = (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def matlab_downsample_factor(height: int, width: int) -> int:
    """Wang's ``ssim.m`` factor ``f = max(1, round(min(H, W) / 256))``, MATLAB rounding.

    MATLAB rounds halves away from zero (Python's ``round`` would round 2.5 to 2).

    >>> [matlab_downsample_factor(n, n) for n in (255, 383, 384, 640, 896)]
    [1, 1, 2, 3, 4]
    """
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def matlab_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """Wang's ``ssim.m`` downsampling of a 2-D array: ``imfilter`` with an f×f average filter
    ('symmetric' borders, 'same' size), then every f-th pixel starting with the first.

    MATLAB anchors an even-sized kernel at element ``floor((f + 1) / 2)`` (1-based), so output
    pixel i averages input pixels ``i - a … i - a + f - 1`` with ``a = (f - 1) // 2``; 'symmetric'
    padding mirrors the edge pixel too (NumPy's ``mode="symmetric"``).

    >>> matlab_downsample(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    if f <= 1:
        return img
    a = (f - 1) // 2
    padded = np.pad(img, ((a, f - 1 - a), (a, f - 1 - a)), mode="symmetric")
    h, w = img.shape
    rows = np.lib.stride_tricks.sliding_window_view(padded, f, axis=0)[::f].mean(axis=-1)
    out = np.lib.stride_tricks.sliding_window_view(rows, f, axis=1)[:, ::f].mean(axis=-1)
    return out[: -(-h // f), : -(-w // f)]


def ssim(
    a: Any,
    b: Any,
    *,
    data_range: float | None = None,
    crop_border: int = 0,
    y_channel: bool = False,
    round_y: bool = False,
    downsample: bool = False,
) -> float | np.ndarray:
    """Structural similarity exactly as Wang et al. (2004) define it.

    For each channel, local means, variances and the covariance are taken under an 11×11
    Gaussian window (σ = 1.5, normalised), as population statistics
    (σ²ₓ = E[x²] − E[x]²), at every position where the window lies wholly inside the image
    ('valid'); then

    ``SSIM = mean over positions of ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))``

    with ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``. A colour image's SSIM is the mean of its
    per-channel values. This equals ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L)`` and
    BasicSR's ``calculate_ssim``.

    ``downsample=True`` first applies the automatic downsampling of Wang's ``ssim.m``
    (see :func:`matlab_downsample`); off by default, as in scikit-image and BasicSR.

    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> ssim(a, a)
    1.0
    >>> noisy = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    >>> round(ssim(a, noisy), 4)
    0.9945
    """
    pair = as_pair(a, b, data_range)
    x, y = _preprocess(pair, crop_border, y_channel, round_y)
    g = gaussian_window()
    n, h, w, c = x.shape
    f = matlab_downsample_factor(h, w) if downsample else 1
    hh, ww = -(-h // f), -(-w // f)
    if min(hh, ww) < SSIM_WIN:
        extra = f" after cropping and downsampling by {f}" if f > 1 or crop_border else ""
        raise InputError(
            f"SSIM needs images of at least {SSIM_WIN}×{SSIM_WIN} pixels (its window), "
            f"got {hh}×{ww}{extra}"
        )
    values = np.empty(n)
    for i in range(n):
        per_channel = []
        for ch in range(c):
            xi, yi = x[i, :, :, ch], y[i, :, :, ch]
            if f > 1:
                xi, yi = matlab_downsample(xi, f), matlab_downsample(yi, f)
            per_channel.append(_ssim_channel(xi, yi, pair.data_range, g))
        values[i] = float(np.mean(per_channel))
    return _result(values, pair.batched)


# ---------------------------------------------------------------------------------------------
# Sharpness
# ---------------------------------------------------------------------------------------------
def sharpness(image: Any, *, data_range: float | None = None) -> float | np.ndarray:
    """Variance of the Laplacian of the grey image, on the 0-255 scale (higher is sharper).

    Grey is BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's ``COLOR_RGB2GRAY``
    weights), computed in float64 without rounding after scaling the image to 0-255 (so a
    uint8 image and its float version score the same). The Laplacian is OpenCV's
    ``cv2.Laplacian(grey, cv2.CV_64F, ksize=1)``, the 3×3 kernel ``[[0, 1, 0], [1, -4, 1],
    [0, 1, 0]]`` with the default ``BORDER_REFLECT_101`` edges; its population variance
    (``np.var``) over all pixels is the score (Pech-Pacheco et al., ICPR 2000).

    >>> flat = np.full((16, 16), 128, np.uint8)
    >>> sharpness(flat)
    0.0
    >>> edge = flat.copy(); edge[:, 8:] = 0
    >>> sharpness(edge) > 0
    True
    """
    import cv2

    im, rng = as_single(image, data_range)
    x = im.data * (255.0 / rng)
    grey = x[..., 0] if x.shape[3] == 1 else x @ GREY_WEIGHTS
    values = np.empty(grey.shape[0])
    for i, g in enumerate(grey):
        lap = cv2.Laplacian(np.ascontiguousarray(g), cv2.CV_64F, ksize=1)
        values[i] = float(np.var(lap))
    return _result(values, im.batched)


# ---------------------------------------------------------------------------------------------
# Classes: options held once, called like the functions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _FullReference:
    data_range: float | None = None
    crop_border: int = 0
    y_channel: bool = False
    round_y: bool = False

    def _options(self) -> dict[str, Any]:
        return {
            "data_range": self.data_range,
            "crop_border": self.crop_border,
            "y_channel": self.y_channel,
            "round_y": self.round_y,
        }


@dataclass(frozen=True)
class MSE(_FullReference):
    """:func:`mse` with its options held.

    >>> MSE()(np.zeros((4, 4)), np.full((4, 4), 0.5))
    0.25
    """

    def __call__(self, a: Any, b: Any) -> float | np.ndarray:
        return mse(a, b, **self._options())


@dataclass(frozen=True)
class PSNR(_FullReference):
    """:func:`psnr` with its options held.

    >>> metric = PSNR(crop_border=1)
    >>> a = np.zeros((6, 6), np.uint8); b = a.copy(); b[0, :] = 255  # only the border differs
    >>> metric(a, b)
    inf
    """

    def __call__(self, a: Any, b: Any) -> float | np.ndarray:
        return psnr(a, b, **self._options())


@dataclass(frozen=True)
class SSIM(_FullReference):
    """:func:`ssim` with its options held (``downsample`` is Wang's ``ssim.m`` downsampling).

    >>> a = np.zeros((2, 3, 16, 16), np.float32)
    >>> SSIM()(a, a)
    array([1., 1.])
    """

    downsample: bool = False

    def __call__(self, a: Any, b: Any) -> float | np.ndarray:
        return ssim(a, b, downsample=self.downsample, **self._options())


@dataclass(frozen=True)
class Sharpness:
    """:func:`sharpness` with its data range held.

    >>> Sharpness()(np.zeros((8, 8), np.uint8))
    0.0
    """

    data_range: float | None = None

    def __call__(self, image: Any) -> float | np.ndarray:
        return sharpness(image, data_range=self.data_range)
