"""The Evaluator: one set of metric options, applied to a pair or to every pair of outputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from typing import Any

import numpy as np

from ..errors import InputError, UnknownNameError
from . import consistency, visual
from .features import FeatureDistance
from .lpips import LPIPS
from .metric_info import FIDELITY_METRICS
from .metrics import MSE, PSNR, SSIM, Sharpness, _check_crop

__all__ = ["METRICS", "Evaluator"]


#: Full-reference metrics :meth:`Evaluator.compare` can compute, in report order.
METRICS = FIDELITY_METRICS


class Evaluator:
    """Metrics, pairwise comparisons, histograms, difference maps and consistency checks.

    Parameters
    ----------
    metrics:
        Which of ``"mse"``, ``"psnr"``, ``"ssim"``, ``"lpips"``, ``"feature_distance"``
        :meth:`compare` computes (default all; LPIPS and the feature distance run ImageNet
        AlexNet, see :mod:`dermsr.evaluate.lpips` and :mod:`dermsr.evaluate.features`).
    data_range:
        ``None`` (from the dtype: 255 uint8, 65535 uint16, 1.0 float) or a number.
    crop_border:
        Pixels ignored along each edge, by every full-reference metric.
    y_channel, round_y:
        MSE, PSNR and SSIM on BT.601 luma (MATLAB ``rgb2ycbcr``), optionally rounded.
    ssim_downsample:
        Wang's ``ssim.m`` automatic downsampling before SSIM.
    lpips_backbone, lpips_device, lpips_batch_size, allow_download:
        Where the AlexNet trunk of LPIPS and of the feature distance comes from, where it
        runs, how many pairs per forward pass.

    >>> ev = Evaluator(metrics=("psnr", "ssim"))
    >>> a = np.zeros((16, 16, 3), np.uint8); b = a.copy(); b[4, 4] = 255
    >>> row = ev.compare(a, b)
    >>> sorted(row), round(row["psnr"], 2)
    (['psnr', 'ssim'], 24.08)
    >>> [(r["a"], r["b"]) for r in ev.pairwise({"torch": a, "onnx": a, "ncnn": b})]
    [('torch', 'onnx'), ('torch', 'ncnn'), ('onnx', 'ncnn')]
    """

    def __init__(
        self,
        metrics: Iterable[str] = METRICS,
        *,
        data_range: float | None = None,
        crop_border: int = 0,
        y_channel: bool = False,
        round_y: bool = False,
        ssim_downsample: bool = False,
        lpips_backbone: str | os.PathLike[str] | None = None,
        lpips_device: str = "cpu",
        lpips_batch_size: int = 4,
        allow_download: bool = True,
    ) -> None:
        if isinstance(metrics, str):
            metrics = (metrics,)
        names = tuple(metrics)
        unknown = [m for m in names if m not in METRICS]
        if unknown or not names:
            raise UnknownNameError(f"unknown metric(s) {unknown}; expected some of {list(METRICS)}")
        self.metrics = tuple(m for m in METRICS if m in names)
        self.data_range = data_range
        self.crop_border = _check_crop(crop_border)
        self.y_channel = bool(y_channel)
        self.round_y = bool(round_y)
        self.ssim_downsample = bool(ssim_downsample)
        self.lpips_backbone = lpips_backbone
        self.lpips_device = lpips_device
        common = {"data_range": data_range, "crop_border": self.crop_border,
                  "y_channel": self.y_channel, "round_y": self.round_y}
        self._metrics: dict[str, Callable[[Any, Any], Any]] = {
            "mse": MSE(**common),
            "psnr": PSNR(**common),
            "ssim": SSIM(downsample=self.ssim_downsample, **common),
            "lpips": LPIPS(backbone=lpips_backbone, device=lpips_device, data_range=data_range,
                           crop_border=self.crop_border, batch_size=lpips_batch_size,
                           allow_download=allow_download),
            "feature_distance": FeatureDistance(backbone=lpips_backbone, device=lpips_device,
                                                data_range=data_range, crop_border=self.crop_border,
                                                batch_size=lpips_batch_size),
        }

    def __repr__(self) -> str:
        return (
            f"Evaluator(metrics={self.metrics!r}, data_range={self.data_range!r}, "
            f"crop_border={self.crop_border}, y_channel={self.y_channel}, round_y={self.round_y}, "
            f"ssim_downsample={self.ssim_downsample}, lpips_backbone={self.lpips_backbone!r}, "
            f"lpips_device={self.lpips_device!r})"
        )

    # -- full-reference metrics ---------------------------------------------------------------
    def compare(self, a: Any, b: Any) -> dict[str, float | np.ndarray]:
        """Every selected metric of ``a`` against ``b`` (floats; arrays for batches)."""
        return {name: self._metrics[name](a, b) for name in self.metrics}

    def pairwise(self, outputs: Mapping[str, Any], *, reference: str | None = None) -> list[dict[str, Any]]:
        """Rows ``{"a": name, "b": name, <metric>: value, ...}`` for every unordered pair of
        outputs, in insertion order; with ``reference``, only that output against each other."""
        if not isinstance(outputs, Mapping) or len(outputs) < 2:
            raise InputError("pairwise needs a mapping of at least two name -> image entries")
        names = [str(k) for k in outputs]
        images = dict(zip(names, outputs.values(), strict=True))
        if reference is not None:
            if reference not in images:
                raise UnknownNameError(f"reference {reference!r} is not among the outputs {names}")
            pairs = [(reference, n) for n in names if n != reference]
        else:
            pairs = list(combinations(names, 2))
        return [{"a": a, "b": b, **self.compare(images[a], images[b])} for a, b in pairs]

    # -- single-image measures and pictures ---------------------------------------------------
    def sharpness(self, image: Any) -> float | np.ndarray:
        """Variance of the Laplacian (:func:`dermsr.evaluate.metrics.sharpness`)."""
        return Sharpness(self.data_range)(image)

    def histograms(self, images: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """256-bin grey-level histograms per name (:func:`dermsr.evaluate.visual.intensity_histograms`)."""
        return visual.intensity_histograms(images, data_range=self.data_range)

    def difference_map(self, ref: Any, test: Any, *, amplify: float = 1.0) -> np.ndarray:
        """Per-channel ``|ref − test|`` as uint8 (:func:`dermsr.evaluate.visual.difference_map`)."""
        return visual.difference_map(ref, test, amplify=amplify, data_range=self.data_range)

    def consistency(self, fn: Callable[[Any], Any], x: Any, **options: Any) -> consistency.ConsistencyReport:
        """Repeated-run check (:func:`dermsr.evaluate.consistency.check_consistency`)."""
        return consistency.check_consistency(fn, x, **options)
