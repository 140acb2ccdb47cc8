"""Named degradation pipelines: ``thesis``, ``bicubic-x4``, ``phone`` and ``realistic``.

Each preset is a function whose keyword arguments are its parameters;
``Degrader.preset(name, **overrides)`` calls it. docs/degradation.md explains every step.

>>> sorted(PRESETS)
['bicubic-x4', 'phone', 'realistic', 'thesis']
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ..errors import InputError, UnknownNameError
from .pipeline import Degrader
from .steps import (
    REALESRGAN_KERNEL_SIZES,
    CenterCrop,
    CropToMultiple,
    GaussianBlur,
    RandomBlur,
    RandomJPEG,
    RandomNoise,
    RandomOrder,
    RandomResize,
    Resize,
    ToNCHW,
)

__all__ = ["PRESETS", "bicubic_x4", "build", "phone", "realistic", "thesis"]


def thesis(*, size: int = 224, crop: int | None = None, blur_ksize: int = 3,
           blur_sigma: float = 0.0, down_scale: float = 0.5,
           down_interpolation: str = "bilinear", up_interpolation: str = "bilinear",
           final_interpolation: str = "area") -> Degrader:
    """The reference study's pipeline (PoliTo 2025 thesis), as float32 NCHW (1, 3, size, size).

    Central square crop (side ``crop``, default min(H, W)) → ``blur_ksize``² Gaussian blur
    (``blur_sigma`` 0: OpenCV's rule, the [1, 2, 1]/4 kernel for 3×3) → resize by
    ``down_scale`` (floor) → resize back to the crop size → resize to ``size``² → float32
    NCHW in [0, 1]. The study fixed neither the blur sigma nor the final interpolation;
    ``area`` (box averaging) is the choice here for that downscale. The HR reference is the
    crop.
    """
    return Degrader([
        CenterCrop(crop),
        GaussianBlur(blur_ksize, blur_sigma),
        Resize(scale=down_scale, interpolation=down_interpolation),
        Resize(scale=1.0, interpolation=up_interpolation, relative_to="hr"),
        Resize(size=(size, size), interpolation=final_interpolation),
        ToNCHW(),
    ], label="thesis")


def bicubic_x4(*, scale: int = 4) -> Degrader:
    """The SR benchmarks' bicubic degradation: MATLAB-style antialiased bicubic ÷ ``scale``.

    HR = the input trimmed to multiples of ``scale`` (bottom/right); LR = HR resized to
    exactly 1/scale with :func:`~dermsr.degrade.ops.imresize_matlab`. Same dtype as input.
    """
    return Degrader([
        CropToMultiple(scale),
        Resize(scale=1.0 / scale, interpolation="bicubic-matlab", relative_to="hr"),
    ], label="bicubic-x4")


def realistic(
    *,
    scale: int = 4,
    blur_kernel_sizes: tuple[int, ...] = REALESRGAN_KERNEL_SIZES,
    iso_prob: float = 0.45 / 0.70,
    blur_sigma: tuple[float, float] = (0.2, 3.0),
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1),
    resize_range: tuple[float, float] = (0.15, 1.5),
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic"),
    gaussian_noise_prob: float = 0.5,
    noise_range: tuple[float, float] = (1.0, 30.0),
    poisson_scale_range: tuple[float, float] = (0.05, 3.0),
    gray_noise_prob: float = 0.4,
    jpeg_range: tuple[int, int] = (30, 95),
    second_blur_prob: float = 0.8,
    blur_sigma2: tuple[float, float] = (0.2, 1.5),
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3),
    resize_range2: tuple[float, float] = (0.3, 1.2),
    gaussian_noise_prob2: float = 0.5,
    noise_range2: tuple[float, float] = (1.0, 25.0),
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5),
    gray_noise_prob2: float = 0.4,
    jpeg_range2: tuple[int, int] = (30, 95),
) -> Degrader:
    """Real-ESRGAN's second-order degradation (Gaussian kernels only), LR = HR / ``scale``.

    Parameter names and defaults are those of Real-ESRGAN's
    ``options/train_realesrgan_x4plus.yml`` (xinntao/Real-ESRGAN); the order of operations
    is that of ``RealESRGANModel.feed_data``. Runs in float32, one rounding at the end.
    """
    to_lr = 1.0 / scale
    return Degrader([
        CropToMultiple(scale),
        # first order
        RandomBlur(1.0, blur_kernel_sizes, blur_sigma, iso_prob),
        RandomResize(resize_prob, resize_range, resize_modes),
        RandomNoise(gaussian_noise_prob, noise_range, poisson_scale_range, gray_noise_prob),
        RandomJPEG(jpeg_range),
        # second order
        RandomBlur(second_blur_prob, blur_kernel_sizes, blur_sigma2, iso_prob),
        RandomResize(resize_prob2, resize_range2, resize_modes, relative_to="hr", base_scale=to_lr),
        RandomNoise(gaussian_noise_prob2, noise_range2, poisson_scale_range2, gray_noise_prob2),
        # resize to HR / scale and JPEG, in random order
        RandomOrder((
            RandomResize((0.0, 0.0, 1.0), (1.0, 1.0), resize_modes, relative_to="hr", base_scale=to_lr),
            RandomJPEG(jpeg_range2),
        )),
    ], work_dtype="float32", label="realistic")


#: Kernel sizes of the ``phone`` preset's optical blur (odd; 13 covers ±3σ at σ = 2).
PHONE_KERNEL_SIZES = (7, 9, 11, 13)


def phone(
    *,
    scale: int = 4,
    blur_kernel_sizes: tuple[int, ...] = PHONE_KERNEL_SIZES,
    blur_sigma: tuple[float, float] = (0.2, 2.0),
    iso_prob: float = 0.8,
    down_modes: tuple[str, ...] = ("area", "bilinear", "bicubic"),
    gaussian_noise_prob: float = 0.6,
    noise_sigma: tuple[float, float] = (0.5, 4.0),
    poisson_scale: tuple[float, float] = (0.05, 0.35),
    gray_noise_prob: float = 0.3,
    jpeg_quality: tuple[int, int] = (60, 90),
) -> Degrader:
    """A smartphone / teledermatology upload, LR = HR / ``scale``: blur → ÷scale → noise → JPEG.

    1. Optical blur (lens, focus, hand shake) at the HR resolution: a Gaussian kernel, size
       drawn from ``blur_kernel_sizes``, σ uniform in ``blur_sigma`` HR pixels, isotropic
       with probability ``iso_prob`` (else anisotropic with a random angle).
    2. The camera/app downscale to exactly HR / ``scale`` with a mode drawn from
       ``down_modes``.
    3. Sensor noise: Gaussian with probability ``gaussian_noise_prob``, σ uniform in
       ``noise_sigma`` grey levels (0–255 scale), else Poisson (shot noise) times a factor
       uniform in ``poisson_scale`` (0.35 ≈ 4 grey levels at mid-grey); the same noise on
       every channel ("grey", luma noise) with probability ``gray_noise_prob``, else
       independent per channel (chroma noise).
    4. JPEG at an integer quality uniform in ``jpeg_quality`` (inclusive), YCbCr with 4:2:0
       chroma subsampling (libjpeg's default through OpenCV), as messaging and upload apps
       re-encode.

    Runs in float32 with one rounding at the end, like ``realistic``; every draw is in the
    record. The defaults are milder than Real-ESRGAN's ``realistic`` (σ up to 30, JPEG down
    to 30, two rounds), which models web images rather than a phone's camera.
    """
    return Degrader([
        CropToMultiple(scale),
        RandomBlur(1.0, blur_kernel_sizes, blur_sigma, iso_prob),
        RandomResize((0.0, 0.0, 1.0), (1.0, 1.0), down_modes, relative_to="hr", base_scale=1.0 / scale),
        RandomNoise(gaussian_noise_prob, noise_sigma, poisson_scale, gray_noise_prob),
        RandomJPEG(jpeg_quality),
    ], work_dtype="float32", label="phone")


#: Preset name → function building it (keyword arguments are its parameters).
PRESETS: MappingProxyType[str, Callable[..., Degrader]] = MappingProxyType({
    "thesis": thesis,
    "bicubic-x4": bicubic_x4,
    "phone": phone,
    "realistic": realistic,
})


def build(name: str, **overrides: Any) -> Degrader:
    """Build preset ``name`` with some parameters overridden; the label records them."""
    fn = PRESETS.get(name)
    if fn is None:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown preset {name!r}{hint} Known: {', '.join(PRESETS)}")
    params = inspect.signature(fn).parameters
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise InputError(f"preset {name!r} has no parameter(s) {unknown}; it takes {sorted(params)}")
    d = fn(**overrides)
    if not overrides:
        return d
    label = f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(overrides.items()))})"
    return Degrader(d.steps, work_dtype=d.work_dtype, label=label)
