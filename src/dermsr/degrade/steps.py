"""Degradation steps: small frozen configs that apply the pure functions of :mod:`.ops`.

(Longer than most modules on purpose: one small class per step, each with its validation,
reads best as one catalogue; splitting it would scatter the step registry.)

A step is a frozen dataclass whose fields are its whole configuration (validated and
normalised on construction, so equal configs compare and serialise equal). Calling it,

    ``step(image, rng=generator, hr_hw=(H, W)) -> (image, info)``

applies it; ``info`` is a JSON-ready dict of what the step drew at random (empty for
deterministic steps), so a pipeline can record exactly what was done. ``hr_hw`` is the size
of the HR reference, which steps sized relative to it (``relative_to="hr"``) need.

Each class has a ``role``: ``"crop"`` steps cut the HR reference out of the input and must
come first in a pipeline; the ``"output"`` step (:class:`ToNCHW`) must come last.

>>> import numpy as np
>>> img = np.zeros((8, 10, 3), np.uint8)
>>> out, info = Resize(scale=0.5)(img)
>>> out.shape, info
((4, 5, 3), {})
>>> step_from_dict(Resize(scale=0.5).to_dict()) == Resize(scale=0.5)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError, UnknownNameError
from . import ops

__all__ = [
    "JPEG",
    "STEP_TYPES",
    "CenterCrop",
    "CropToMultiple",
    "GaussianBlur",
    "GaussianNoise",
    "PoissonNoise",
    "RandomBlur",
    "RandomJPEG",
    "RandomNoise",
    "RandomOrder",
    "RandomResize",
    "Resize",
    "Step",
    "ToNCHW",
    "step_from_dict",
]

#: Step classes by name, as ``to_dict()`` writes them in ``"type"``.
STEP_TYPES: dict[str, type[Step]] = {}

_RESIZE_MODES = tuple(ops.INTERPOLATIONS)
_RELATIVE = ("current", "hr")


class Step:
    """Base class of every step (subclasses are frozen dataclasses)."""

    role: ClassVar[str] = "op"  # "crop" | "op" | "output"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        STEP_TYPES[cls.__name__] = cls

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None,
                 hr_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """``{"type": <class name>, <field>: <value>, ...}`` with tuples as lists (JSON-ready)."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Step):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def step_from_dict(data: Any) -> Step:
    """Rebuild a step from :meth:`Step.to_dict` output (or the same dict read back from JSON)."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise InputError(f"a step must be a dict with a 'type' name, got {data!r}")
    cls = STEP_TYPES.get(data["type"])
    if cls is None:
        raise UnknownNameError(
            f"unknown degradation step {data['type']!r}; known: {', '.join(sorted(STEP_TYPES))}"
        )
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    extra = sorted(set(data) - names - {"type"})
    if extra:
        raise InputError(f"{cls.__name__} has no field(s) {extra}; its fields are {sorted(names)}")
    return cls(**{k: v for k, v in data.items() if k != "type"})


# --------------------------------------------------------------------------- field checks


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _float(v: Any, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if not _is_number(v) or not math.isfinite(float(v)) or not lo <= float(v) <= hi:
        raise InputError(f"{name} must be a finite number in [{lo}, {hi}], got {v!r}")
    return float(v)


def _int(v: Any, name: str, lo: int = 1, hi: int | None = None) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)) or v < lo or (
        hi is not None and v > hi
    ):
        bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InputError(f"{name} must be an integer {bound}, got {v!r}")
    return int(v)


def _pair(v: Any, name: str, lo: float, hi: float, integer: bool = False) -> tuple[Any, Any]:
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise InputError(f"{name} must be a (low, high) pair, got {v!r}")
    conv = _int if integer else _float
    a, b = conv(v[0], name, lo, hi), conv(v[1], name, lo, hi)  # type: ignore[operator]
    if a > b:
        raise InputError(f"{name} must be (low, high) with low <= high, got {v!r}")
    return a, b


def _probs(v: Any, name: str, n: int) -> tuple[float, ...]:
    if not isinstance(v, (tuple, list)) or len(v) != n:
        raise InputError(f"{name} must be {n} probabilities, got {v!r}")
    p = tuple(_float(x, name, 0.0, 1.0) for x in v)
    if abs(sum(p) - 1.0) > 1e-6:
        raise InputError(f"{name} must sum to 1, got {v!r} (sum {sum(p)})")
    return p


def _choice(v: Any, name: str, options: tuple[str, ...]) -> str:
    if v not in options:
        raise InputError(f"{name} must be one of {list(options)}, got {v!r}")
    return str(v)


def _bool(v: Any, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def _need_rng(rng: np.random.Generator | None, step: Step) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"{type(step).__name__} draws random values; pass rng=numpy.random.Generator")
    return rng


def _scaled(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """floor(side · scale), at least 1 (the tiny epsilon absorbs float error, e.g. 0.29·100)."""
    return tuple(max(1, math.floor(s * scale + 1e-9)) for s in hw)  # type: ignore[return-value]


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CenterCrop(Step):
    """Central square crop (:func:`ops.center_crop`); ``size=None`` takes side min(H, W)."""

    role: ClassVar[str] = "crop"
    size: int | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            _set(self, "size", _int(self.size, "CenterCrop.size"))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.center_crop(image, self.size), {}


@dataclass(frozen=True)
class CropToMultiple(Step):
    """Trim bottom/right so H and W are multiples of ``multiple`` (:func:`ops.crop_to_multiple`)."""

    role: ClassVar[str] = "crop"
    multiple: int = 4

    def __post_init__(self) -> None:
        _set(self, "multiple", _int(self.multiple, "CropToMultiple.multiple"))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.crop_to_multiple(image, self.multiple), {}


# --------------------------------------------------------------------------- deterministic ops


@dataclass(frozen=True)
class GaussianBlur(Step):
    """``cv2.GaussianBlur`` (:func:`ops.gaussian_blur`); ``sigma=0`` is OpenCV's rule from ksize."""

    ksize: int = 3
    sigma: float = 0.0

    def __post_init__(self) -> None:
        k = _int(self.ksize, "GaussianBlur.ksize")
        if k % 2 == 0:
            raise InputError(f"GaussianBlur.ksize must be odd, got {k}")
        _set(self, "ksize", k)
        _set(self, "sigma", _float(self.sigma, "GaussianBlur.sigma", 0.0))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.gaussian_blur(image, self.ksize, self.sigma), {}


@dataclass(frozen=True)
class Resize(Step):
    """Resize to a fixed ``size`` = (height, width), or by ``scale``.

    With ``scale``, the new side is floor(side · scale) of the current image
    (``relative_to="current"``) or of the HR reference (``relative_to="hr"``), at least 1.
    """

    size: tuple[int, int] | None = None
    scale: float | None = None
    interpolation: str = "bilinear"
    relative_to: str = "current"

    def __post_init__(self) -> None:
        if (self.size is None) == (self.scale is None):
            raise InputError(f"Resize needs exactly one of size or scale, got size={self.size!r}, scale={self.scale!r}")
        if self.size is not None:
            if not isinstance(self.size, (tuple, list)) or len(self.size) != 2:
                raise InputError(f"Resize.size must be (height, width), got {self.size!r}")
            _set(self, "size", tuple(_int(v, "Resize.size") for v in self.size))
        if self.scale is not None:
            s = _float(self.scale, "Resize.scale", 0.0)
            if s == 0:
                raise InputError("Resize.scale must be > 0")
            _set(self, "scale", s)
        _set(self, "interpolation", _choice(self.interpolation, "Resize.interpolation", _RESIZE_MODES))
        _set(self, "relative_to", _choice(self.relative_to, "Resize.relative_to", _RELATIVE))

    def __call__(self, image, rng=None, hr_hw=None):
        if self.size is not None:
            size = self.size
        else:
            ref = hr_hw if (self.relative_to == "hr" and hr_hw is not None) else image.shape[:2]
            size = _scaled(tuple(ref), self.scale)  # type: ignore[arg-type]
        return ops.resize(image, size, self.interpolation), {}


@dataclass(frozen=True)
class JPEG(Step):
    """Real JPEG at a fixed ``quality`` (:func:`ops.jpeg`)."""

    quality: int = 75

    def __post_init__(self) -> None:
        _set(self, "quality", _int(self.quality, "JPEG.quality", 1, 100))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.jpeg(image, self.quality), {}


@dataclass(frozen=True)
class GaussianNoise(Step):
    """Gaussian noise of std ``sigma`` on the 0–255 scale (:func:`ops.add_gaussian_noise`)."""

    sigma: float = 10.0
    gray: bool = False

    def __post_init__(self) -> None:
        _set(self, "sigma", _float(self.sigma, "GaussianNoise.sigma", 0.0))
        _set(self, "gray", _bool(self.gray, "GaussianNoise.gray"))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.add_gaussian_noise(image, self.sigma, _need_rng(rng, self), self.gray), {}


@dataclass(frozen=True)
class PoissonNoise(Step):
    """Real-ESRGAN's Poisson noise times ``scale`` (:func:`ops.add_poisson_noise`)."""

    scale: float = 1.0
    gray: bool = False

    def __post_init__(self) -> None:
        _set(self, "scale", _float(self.scale, "PoissonNoise.scale", 0.0))
        _set(self, "gray", _bool(self.gray, "PoissonNoise.gray"))

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.add_poisson_noise(image, self.scale, _need_rng(rng, self), self.gray), {}


# --------------------------------------------------------------------------- random ops
# Defaults are Real-ESRGAN's first-order settings (options/train_realesrgan_x4plus.yml and
# realesrgan/models/realesrgan_model.py in xinntao/Real-ESRGAN; Wang et al., "Real-ESRGAN:
# Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCV-W 2021).

#: Real-ESRGAN's kernel sizes: odd 7..21 (RealESRGANDataset.kernel_range).
REALESRGAN_KERNEL_SIZES = (7, 9, 11, 13, 15, 17, 19, 21)


@dataclass(frozen=True)
class RandomBlur(Step):
    """With probability ``prob``, blur with a random isotropic or anisotropic Gaussian kernel.

    Draws, in order: applied?; kernel size from ``kernel_sizes``; isotropic with
    ``iso_prob``; σx (and for anisotropic σy and θ ∈ [-π, π]) uniform in ``sigma_range``.
    The default ``iso_prob`` 0.45 / 0.70 keeps Real-ESRGAN's iso : aniso ratio (0.45 : 0.25)
    once its generalised, plateau and sinc kernels are left out.
    """

    prob: float = 1.0
    kernel_sizes: tuple[int, ...] = REALESRGAN_KERNEL_SIZES
    sigma_range: tuple[float, float] = (0.2, 3.0)
    iso_prob: float = 0.45 / 0.70

    def __post_init__(self) -> None:
        _set(self, "prob", _float(self.prob, "RandomBlur.prob", 0.0, 1.0))
        ks = self.kernel_sizes
        if not isinstance(ks, (tuple, list)) or not ks:
            raise InputError(f"RandomBlur.kernel_sizes must be a non-empty list of odd sizes, got {ks!r}")
        ks = tuple(_int(k, "RandomBlur.kernel_sizes") for k in ks)
        if any(k % 2 == 0 for k in ks):
            raise InputError(f"RandomBlur.kernel_sizes must all be odd, got {list(ks)}")
        _set(self, "kernel_sizes", ks)
        lo, hi = _pair(self.sigma_range, "RandomBlur.sigma_range", 0.0, math.inf)
        if lo <= 0:
            raise InputError(f"RandomBlur.sigma_range must be > 0, got {self.sigma_range!r}")
        _set(self, "sigma_range", (lo, hi))
        _set(self, "iso_prob", _float(self.iso_prob, "RandomBlur.iso_prob", 0.0, 1.0))

    def __call__(self, image, rng=None, hr_hw=None):
        rng = _need_rng(rng, self)
        if not rng.random() < self.prob:
            return image.copy(), {"applied": False}
        k = int(self.kernel_sizes[int(rng.integers(len(self.kernel_sizes)))])
        iso = bool(rng.random() < self.iso_prob)
        sx = float(rng.uniform(*self.sigma_range))
        if iso:
            sy, theta = sx, 0.0
        else:
            sy = float(rng.uniform(*self.sigma_range))
            theta = float(rng.uniform(-math.pi, math.pi))
        out = ops.filter2d(image, ops.gaussian_kernel(k, sx, sy, theta))
        return out, {"applied": True, "ksize": k, "isotropic": iso, "sigma_x": sx,
                     "sigma_y": sy, "theta": theta}


@dataclass(frozen=True)
class RandomResize(Step):
    """Resize up, down or keep (``updown_probs``) by a random factor, with a random mode.

    Draws, in order: up / down / keep; the factor, uniform in [1, high] (up) or [low, 1]
    (down) of ``scale_range``, 1 for keep; the mode from ``modes``. The new side is
    floor(ref · base_scale · factor) with ref the current side (``relative_to="current"``) or
    the HR side (``"hr"``) — Real-ESRGAN's second stage sizes relative to HR / 4.
    """

    updown_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    scale_range: tuple[float, float] = (0.15, 1.5)
    modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    relative_to: str = "current"
    base_scale: float = 1.0

    def __post_init__(self) -> None:
        _set(self, "updown_probs", _probs(self.updown_probs, "RandomResize.updown_probs", 3))
        lo, hi = _pair(self.scale_range, "RandomResize.scale_range", 0.0, math.inf)
        if not 0 < lo <= 1 <= hi:
            raise InputError(f"RandomResize.scale_range must satisfy 0 < low <= 1 <= high, got {self.scale_range!r}")
        _set(self, "scale_range", (lo, hi))
        if not isinstance(self.modes, (tuple, list)) or not self.modes:
            raise InputError(f"RandomResize.modes must be a non-empty list, got {self.modes!r}")
        _set(self, "modes", tuple(_choice(m, "RandomResize.modes", _RESIZE_MODES) for m in self.modes))
        _set(self, "relative_to", _choice(self.relative_to, "RandomResize.relative_to", _RELATIVE))
        b = _float(self.base_scale, "RandomResize.base_scale", 0.0)
        if b == 0:
            raise InputError("RandomResize.base_scale must be > 0")
        _set(self, "base_scale", b)

    def __call__(self, image, rng=None, hr_hw=None):
        rng = _need_rng(rng, self)
        kind = ("up", "down", "keep")[int(rng.choice(3, p=self.updown_probs))]
        if kind == "up":
            factor = float(rng.uniform(1.0, self.scale_range[1]))
        elif kind == "down":
            factor = float(rng.uniform(self.scale_range[0], 1.0))
        else:
            factor = 1.0
        mode = self.modes[int(rng.integers(len(self.modes)))]
        ref = hr_hw if (self.relative_to == "hr" and hr_hw is not None) else image.shape[:2]
        size = _scaled(tuple(ref), self.base_scale * factor)  # type: ignore[arg-type]
        return ops.resize(image, size, mode), {"updown": kind, "factor": factor, "mode": mode,
                                               "size": list(size)}


@dataclass(frozen=True)
class RandomNoise(Step):
    """Gaussian noise (probability ``gaussian_prob``) or else Poisson noise, maybe grey.

    Draws, in order: Gaussian?; σ uniform in ``sigma_range`` (0–255 scale) or the Poisson
    scale uniform in ``poisson_scale_range``; grey with ``gray_prob``; then the noise itself.
    """

    gaussian_prob: float = 0.5
    sigma_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        _set(self, "gaussian_prob", _float(self.gaussian_prob, "RandomNoise.gaussian_prob", 0.0, 1.0))
        _set(self, "sigma_range", _pair(self.sigma_range, "RandomNoise.sigma_range", 0.0, math.inf))
        _set(self, "poisson_scale_range",
             _pair(self.poisson_scale_range, "RandomNoise.poisson_scale_range", 0.0, math.inf))
        _set(self, "gray_prob", _float(self.gray_prob, "RandomNoise.gray_prob", 0.0, 1.0))

    def __call__(self, image, rng=None, hr_hw=None):
        rng = _need_rng(rng, self)
        if rng.random() < self.gaussian_prob:
            sigma = float(rng.uniform(*self.sigma_range))
            gray = bool(rng.random() < self.gray_prob)
            return ops.add_gaussian_noise(image, sigma, rng, gray), {
                "noise": "gaussian", "sigma": sigma, "gray": gray}
        scale = float(rng.uniform(*self.poisson_scale_range))
        gray = bool(rng.random() < self.gray_prob)
        return ops.add_poisson_noise(image, scale, rng, gray), {
            "noise": "poisson", "scale": scale, "gray": gray}


@dataclass(frozen=True)
class RandomJPEG(Step):
    """Real JPEG with an integer quality drawn uniformly from ``quality_range`` (inclusive).

    Real-ESRGAN draws a real-valued quality in [30, 95] for its differentiable JPEG; a real
    encoder takes integers, so this draws integers.
    """

    quality_range: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        _set(self, "quality_range", _pair(self.quality_range, "RandomJPEG.quality_range", 1, 100, integer=True))

    def __call__(self, image, rng=None, hr_hw=None):
        rng = _need_rng(rng, self)
        q = int(rng.integers(self.quality_range[0], self.quality_range[1] + 1))
        return ops.jpeg(image, q), {"quality": q}


@dataclass(frozen=True)
class RandomOrder(Step):
    """Apply ``steps`` in a random order (one permutation drawn per call)."""

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.steps, (tuple, list)):
            raise InputError(f"RandomOrder.steps must be a list of steps, got {self.steps!r}")
        steps = tuple(step_from_dict(s) if isinstance(s, dict) else s for s in self.steps)
        for s in steps:
            if not isinstance(s, Step) or s.role != "op":
                raise InputError(f"RandomOrder can only reorder plain steps (not crops or ToNCHW), got {s!r}")
        _set(self, "steps", steps)

    def __call__(self, image, rng=None, hr_hw=None):
        rng = _need_rng(rng, self)
        order = [int(i) for i in rng.permutation(len(self.steps))]
        infos = []
        for i in order:
            image, info = self.steps[i](image, rng=rng, hr_hw=hr_hw)
            infos.append({"type": type(self.steps[i]).__name__, **info})
        return image, {"order": order, "steps": infos}


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class ToNCHW(Step):
    """float32 (1, 3, H, W) RGB in [0, 1] (:func:`ops.to_nchw`); must be the last step."""

    role: ClassVar[str] = "output"

    def __call__(self, image, rng=None, hr_hw=None):
        return ops.to_nchw(image), {}
