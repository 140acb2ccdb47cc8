"""Pure degradation operations on images as users hold them.

(Longer than most modules on purpose: a flat catalogue of independent pure functions, each
with its docstring and example, that the steps call by name.)

Every function takes an image as a NumPy array — ``(H, W)`` grey or ``(H, W, C)`` with
C = 1, 3 (RGB) or 4 (RGBA) — of dtype uint8, uint16, float32 or float64 (floats in [0, 1])
and returns the same layout and dtype. Nothing is changed in place.

* Geometric operations (crops, resizes) act on every channel, alpha included, so the alpha
  stays aligned with the colour.
* Photometric operations (blur, noise, JPEG) act on the colour channels only; an alpha
  channel passes through unchanged.
* uint results are rounded to nearest and saturated; float results are clipped to [0, 1].

Where OpenCV implements an operation for the input's dtype (blur, filtering, resizing) it
runs on that dtype directly, exactly as a study calling OpenCV on its uint8 images would.
Noise is computed in floating point and converted back; JPEG is 8-bit by nature, so
:func:`jpeg` carries 8-bit precision whatever the input's dtype.

>>> import numpy as np
>>> img = np.full((6, 8, 3), 200, np.uint8)
>>> center_crop(img).shape, gaussian_blur(img).dtype, resize(img, (3, 4)).shape
((6, 6, 3), dtype('uint8'), (3, 4, 3))
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..imaging import UINT_MAX as _UINT_MAX
from ..imaging import uint_to_float

__all__ = [
    "INTERPOLATIONS",
    "add_gaussian_noise",
    "add_poisson_noise",
    "center_crop",
    "check_image",
    "crop_to_multiple",
    "filter2d",
    "from_float",
    "gaussian_blur",
    "gaussian_kernel",
    "imresize_matlab",
    "jpeg",
    "resize",
    "to_float",
    "to_nchw",
]

_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))

#: Interpolation names accepted by :func:`resize` and the OpenCV flag behind each.
#: ``"bicubic-matlab"`` is not OpenCV: it is :func:`imresize_matlab`.
INTERPOLATIONS: dict[str, int | None] = {
    "nearest": cv2.INTER_NEAREST_EXACT,  # pixel-centre aligned (INTER_NEAREST is shifted)
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,  # Keys cubic, a = -0.75, no antialiasing
    "area": cv2.INTER_AREA,  # pixel-area averaging; the usual choice for shrinking
    "lanczos": cv2.INTER_LANCZOS4,
    "bicubic-matlab": None,  # MATLAB imresize: cubic a = -0.5, antialiased when shrinking
}

# ITU-R BT.601 luma weights as torchvision's rgb_to_grayscale uses them (and so Real-ESRGAN's
# grey noise, basicsr/data/degradations.py)
_LUMA = np.array([0.2989, 0.587, 0.114])


# --------------------------------------------------------------------------- validation


def check_image(image: Any, what: str = "image") -> np.ndarray:
    """Return ``image`` if it is an image these operations accept, else raise InputError.

    >>> check_image(np.zeros((2, 2, 2), np.uint8))
    Traceback (most recent call last):
    ...
    dermsr.errors.InputError: image has shape (2, 2, 2); expected (H, W) grey or (H, W, C) with C = 1, 3 (RGB) or 4 (RGBA)
    """
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"{what} must be a NumPy array of shape (H, W) or (H, W, C), got {type(image).__name__}"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"{what} has shape {image.shape}; expected (H, W) grey or (H, W, C) with "
            "C = 1, 3 (RGB) or 4 (RGBA)"
        )
    if image.size == 0:
        raise InputError(f"{what} is empty (shape {image.shape})")
    if image.dtype not in _DTYPES:
        raise InputError(
            f"{what} has dtype {image.dtype}; expected uint8, uint16, float32 or float64 "
            "(floats in [0, 1])"
        )
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise InputError(f"{what} contains NaN or infinity; expected finite values in [0, 1]")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"{what} is a float image with values in [{lo:.4g}, {hi:.4g}]; expected [0, 1]"
            )
    return image


def to_float(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats: float64 stays float64, everything else becomes float32."""
    if image.dtype in _UINT_MAX:
        return uint_to_float(image)
    return image.astype(np.float32 if image.dtype != np.float64 else np.float64, copy=True)


def from_float(x: np.ndarray, dtype: Any) -> np.ndarray:
    """[0, 1] floats → ``dtype``: clipped; uint rounded to nearest (halves up, like MATLAB)."""
    dtype = np.dtype(dtype)
    x = np.clip(x, 0.0, 1.0)
    if dtype in _UINT_MAX:
        return np.floor(x * _UINT_MAX[dtype] + 0.5).astype(dtype)
    return x.astype(dtype)


def _like(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Give ``out`` the input's rank back (OpenCV drops a trailing channel axis of 1)."""
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    if out.dtype.kind == "f":
        out = np.clip(out, 0.0, 1.0, out=out)
    return out


def _photometric(image: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn`` to the colour channels; an alpha channel is carried over unchanged."""
    if image.ndim == 3 and image.shape[2] == 4:
        colour = _like(fn(np.ascontiguousarray(image[:, :, :3])), image)
        return np.concatenate([colour, image[:, :, 3:]], axis=2)
    return _like(fn(image), image)


def _size_hw(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"size must be positive (height, width), got {size!r}")
    return h, w


# --------------------------------------------------------------------------- geometry


def center_crop(image: np.ndarray, size: int | None = None) -> np.ndarray:
    """The central ``size`` × ``size`` square (default: the largest, side min(H, W)).

    When H - size or W - size is odd the extra row/column is dropped at the bottom/right
    (top = (H - size) // 2, left = (W - size) // 2).

    >>> center_crop(np.arange(12, dtype=np.uint8).reshape(3, 4)).tolist()
    [[0, 1, 2], [4, 5, 6], [8, 9, 10]]
    """
    check_image(image)
    h, w = image.shape[:2]
    side = min(h, w) if size is None else int(size)
    if side < 1 or side > min(h, w):
        raise InputError(f"crop size must be in [1, {min(h, w)}] for a {h}x{w} image, got {size}")
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side].copy()


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Trim the bottom rows and right columns so H and W are multiples of ``multiple``.

    This is the usual "mod crop" of SR benchmarks, so that HR and LR pixels align exactly.

    >>> crop_to_multiple(np.zeros((10, 7)), 4).shape
    (8, 4)
    """
    check_image(image)
    h, w = image.shape[:2]
    m = int(multiple)
    if h < m or w < m:
        raise InputError(f"image is {h}x{w}; expected at least {m}x{m} to crop to a multiple of {m}")
    return image[: h - h % m, : w - w % m].copy()


def resize(image: np.ndarray, size: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Resize to ``size`` = (height, width) with a named interpolation (see INTERPOLATIONS).

    OpenCV's ``cv2.resize`` does the work except for ``"bicubic-matlab"``
    (:func:`imresize_matlab`). Note the (height, width) order, unlike OpenCV's (width, height).
    """
    check_image(image)
    if interpolation not in INTERPOLATIONS:
        raise InputError(
            f"unknown interpolation {interpolation!r}; expected one of {sorted(INTERPOLATIONS)}"
        )
    h, w = _size_hw(size)
    if interpolation == "bicubic-matlab":
        return imresize_matlab(image, (h, w))
    out = cv2.resize(image, (w, h), interpolation=INTERPOLATIONS[interpolation])
    return _like(out, image)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's imresize "bicubic")."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _matlab_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of MATLAB imresize's bicubic weights along one axis.

    Follows the algorithm MATLAB documents for ``imresize(..., 'bicubic')``: output pixel i
    (1-based) samples input position u = i / s + (1 - 1 / s) / 2 with s = n_out / n_in; when
    shrinking (s < 1) the kernel is stretched by 1 / s and scaled by s (antialiasing); weights
    are normalised to sum to 1 and positions beyond the border are mirrored (symmetric
    padding, edge pixel repeated).
    """
    s = n_out / n_in
    width = 4.0
    if s < 1:
        width /= s

        def kernel(x: np.ndarray) -> np.ndarray:
            return s * _cubic(s * x)
    else:
        kernel = _cubic
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / s + 0.5 * (1.0 - 1.0 / s)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    wts = kernel(u[:, None] - idx)
    wts /= wts.sum(axis=1, keepdims=True)
    # symmetric padding: 1..n, n..1, repeated
    period = 2 * n_in
    m = np.mod(idx.astype(np.int64) - 1, period)
    src = np.where(m < n_in, m, period - 1 - m)
    mat = np.zeros((n_out, n_in))
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), src.ravel()), wts.ravel())
    return mat


def imresize_matlab(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize like MATLAB's ``imresize(I, [H W])`` (antialiased when shrinking).

    The standard bicubic degradation of SR benchmarks (Set5, DIV2K "bicubic" tracks) is
    MATLAB's imresize: Keys cubic kernel with a = -0.5, widened by 1/scale when shrinking so
    it also low-pass filters. OpenCV has no antialiased bicubic (``cv2.INTER_CUBIC`` is
    a = -0.75 with no antialiasing; ``cv2.INTER_AREA`` is box averaging), so this is a small
    separable NumPy implementation: one weight matrix per axis, computed in float64, rounded
    once at the end. Away from the borders it agrees with PyTorch's
    ``interpolate(mode="bicubic", antialias=True)`` (tests check this); at the borders it
    mirrors the image as MATLAB does instead of renormalising a clipped kernel.

    >>> ramp = np.linspace(0, 1, 16).reshape(4, 4)
    >>> imresize_matlab(ramp, (2, 2)).shape
    (2, 2)
    >>> float(imresize_matlab(np.full((8, 8), 0.5), (2, 2)).max())  # constants stay constant
    0.5
    """
    check_image(image)
    h, w = _size_hw(size)
    x = image.astype(np.float64)
    if image.dtype in _UINT_MAX:
        x /= _UINT_MAX[image.dtype]
    wh = _matlab_weights(image.shape[0], h)
    ww = _matlab_weights(image.shape[1], w)
    out = np.tensordot(wh, x, axes=(1, 0))  # (h, W[, C]); tensordot runs on BLAS
    out = np.moveaxis(np.tensordot(ww, out, axes=(1, 1)), 0, 1)  # (h, w[, C])
    return from_float(out, image.dtype)


# --------------------------------------------------------------------------- blur


def gaussian_blur(image: np.ndarray, ksize: int = 3, sigma: float = 0.0) -> np.ndarray:
    """``cv2.GaussianBlur`` with a ``ksize`` × ``ksize`` kernel, mirrored borders (REFLECT_101).

    ``sigma=0`` hands the choice to OpenCV. Beware: OpenCV documents sigma = 0.3·((k-1)·0.5 - 1)
    + 0.8 (0.8 for k = 3), but for odd k ≤ 7 its source (``getGaussianKernel``,
    ``small_gaussian_tab``) uses fixed binomial kernels instead: [1, 2, 1] / 4 for k = 3, the
    sampled Gaussian of sigma = 1 / sqrt(2 ln 2) ≈ 0.849, not 0.8. ``sigma=0.8`` gives the
    kernel the formula describes.

    >>> img = np.zeros((5, 5), np.float32); img[2, 2] = 1
    >>> gaussian_blur(img)[2, 1:4].tolist()
    [0.125, 0.25, 0.125]
    """
    check_image(image)
    k = int(ksize)
    if k < 1 or k % 2 == 0:
        raise InputError(f"ksize must be a positive odd integer, got {ksize!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"sigma must be >= 0 (0: OpenCV's rule from ksize), got {sigma!r}")
    return _photometric(
        image,
        lambda c: cv2.GaussianBlur(c, (k, k), sigmaX=float(sigma), sigmaY=float(sigma),
                                   borderType=cv2.BORDER_REFLECT_101),
    )


def gaussian_kernel(ksize: int, sigma_x: float, sigma_y: float | None = None,
                    theta: float = 0.0) -> np.ndarray:
    """A normalised ``ksize`` × ``ksize`` (an)isotropic Gaussian kernel, float64.

    The covariance is R(θ) diag(σx², σy²) R(θ)ᵀ, with θ the rotation (radians) of the x axis
    towards y — the kernels of Real-ESRGAN's blur (Wang et al., ICCV-W 2021, Sec. 3.1).

    >>> k = gaussian_kernel(3, 1.0)
    >>> k.shape, round(float(k.sum()), 12), bool(np.allclose(k, k.T))
    ((3, 3), 1.0, True)
    """
    k = int(ksize)
    if k < 1 or k % 2 == 0:
        raise InputError(f"ksize must be a positive odd integer, got {ksize!r}")
    sx = float(sigma_x)
    sy = sx if sigma_y is None else float(sigma_y)
    if not (sx > 0 and sy > 0):
        raise InputError(f"kernel sigmas must be > 0, got ({sigma_x!r}, {sigma_y!r})")
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sx * sx, sy * sy]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(k) - (k - 1) / 2.0
    xx, yy = np.meshgrid(r, r)  # xx varies along columns (x), yy along rows (y)
    pts = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return kernel / kernel.sum()


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter with a 2-D kernel via ``cv2.filter2D``, mirrored borders (REFLECT_101)."""
    check_image(image)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.size == 0:
        raise InputError(f"kernel must be a non-empty 2-D array, got shape {kernel.shape}")
    # cv2.filter2D correlates; flipping the kernel makes it a true convolution
    kern = np.ascontiguousarray(kernel[::-1, ::-1])
    return _photometric(
        image, lambda c: cv2.filter2D(c, -1, kern, borderType=cv2.BORDER_REFLECT_101)
    )


# --------------------------------------------------------------------------- noise


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator,
                       gray: bool = False) -> np.ndarray:
    """Add zero-mean Gaussian noise of std ``sigma`` / 255 (of full scale), then clip.

    ``sigma`` is on the 0–255 scale whatever the dtype, as Real-ESRGAN's ``noise_range``.
    ``gray=True`` adds the same noise to every colour channel ("grey noise").
    """
    check_image(image)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"sigma must be >= 0, got {sigma!r}")

    def fn(c: np.ndarray) -> np.ndarray:
        x = to_float(c)
        shape = x.shape[:2] + ((1,) if x.ndim == 3 and gray else x.shape[2:])
        noise = rng.standard_normal(shape) * (sigma / 255.0)
        return from_float(x + noise, c.dtype)

    return _photometric(image, fn)


def _poisson_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN's Poisson noise for [0, 1] floats (basicsr ``generate_poisson_noise``).

    The image is quantised to 8 bits, the number of distinct levels is rounded up to a power
    of two (``vals``), and noise = Poisson(x · vals) / vals - x.
    """
    q = np.clip(np.floor(x * 255.0 + 0.5), 0, 255)
    levels = int(np.count_nonzero(np.bincount(q.astype(np.int64).ravel(), minlength=256)))
    vals = 2.0 ** math.ceil(math.log2(max(levels, 1)))
    q /= 255.0
    return rng.poisson(q * vals) / vals - q


def add_poisson_noise(image: np.ndarray, scale: float, rng: np.random.Generator,
                      gray: bool = False) -> np.ndarray:
    """Add Real-ESRGAN's signal-dependent Poisson noise times ``scale``, then clip.

    ``gray=True`` computes the noise on the luma (BT.601 weights) and adds it to every
    colour channel.
    """
    check_image(image)
    if not (math.isfinite(scale) and scale >= 0):
        raise InputError(f"scale must be >= 0, got {scale!r}")

    def fn(c: np.ndarray) -> np.ndarray:
        x = to_float(c)
        if gray and x.ndim == 3 and x.shape[2] == 3:
            noise = _poisson_noise(x @ _LUMA, rng)[:, :, None]
        else:
            noise = _poisson_noise(x, rng)
        return from_float(x + noise * scale, c.dtype)

    return _photometric(image, fn)


# --------------------------------------------------------------------------- JPEG


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as a real JPEG at ``quality`` (1–100) with OpenCV and decode it again.

    JPEG holds 8 bits per sample: uint16 and float images are rounded to 8 bits first and
    come back in their own dtype, carrying 8-bit precision. OpenCV's encoder (libjpeg
    defaults: YCbCr with 4:2:0 chroma subsampling for colour) is deterministic.

    >>> img = np.full((16, 16, 3), 128, np.uint8)
    >>> bool((jpeg(img, 90) == 128).all())
    True
    """
    check_image(image)
    q = int(quality)
    if q != quality or not 1 <= q <= 100:
        raise InputError(f"JPEG quality must be an integer in [1, 100], got {quality!r}")

    def fn(c: np.ndarray) -> np.ndarray:
        u8 = c if c.dtype == np.uint8 else from_float(to_float(c), np.uint8)
        if u8.ndim == 3 and u8.shape[2] == 1:
            u8 = u8[:, :, 0]
        bgr = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if u8.ndim == 3 else u8
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 1/3-channel image
            raise InputError(f"OpenCV could not JPEG-encode a {u8.shape} image")
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if dec.ndim == 3 else dec
        if c.dtype == np.uint8:
            return dec
        return from_float(dec.astype(np.float64) / 255.0, c.dtype)

    return _photometric(image, fn)


# --------------------------------------------------------------------------- output


def to_nchw(image: np.ndarray) -> np.ndarray:
    """float32 (1, 3, H, W) RGB in [0, 1]: the model's input convention.

    Grey is repeated to three channels. An alpha channel is dropped only if it is fully
    opaque; a translucent image is refused, since dropping its alpha would change it.

    >>> to_nchw(np.full((2, 3), 255, np.uint8)).shape
    (1, 3, 2, 3)
    """
    check_image(image)
    x = image if image.ndim == 3 else image[:, :, None]
    if x.shape[2] == 4:
        alpha = x[:, :, 3]
        full = _UINT_MAX.get(x.dtype, 1.0)
        if (alpha != full).any():
            raise InputError(
                "image has a translucent alpha channel; composite it onto a background "
                "(or drop alpha) before converting to the model's RGB input"
            )
        x = x[:, :, :3]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    f = to_float(x).astype(np.float32, copy=False)
    return np.ascontiguousarray(f.transpose(2, 0, 1))[None]
