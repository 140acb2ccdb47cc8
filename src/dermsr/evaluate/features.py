"""Feature distance: mean squared difference of ImageNet AlexNet's last convolutional features.

``feature_distance(a, b)`` is the "feature reconstruction" distance of Johnson, Alahi & Fei-Fei
(ECCV 2016) and SRGAN's content distance (Ledig et al., CVPR 2017), taken on AlexNet instead
of VGG because ImageNet AlexNet is the network dermsr ships (for LPIPS, BSD-3-Clause):

    x̂ = (x / L − mean) / std                  per RGB channel, ImageNet mean and std
    φ(x̂) = AlexNet ``features[:12]``(x̂)        conv1 … conv5 and its ReLU (relu5), before the last max-pool
    D(a, b) = mean over channels c and positions (i, j) of (φ(â)[c, i, j] − φ(b̂)[c, i, j])²

0 for identical images, larger is more different, symmetric; ``√D`` is a (pseudo-)metric.
Unlike LPIPS it takes one deep layer, the raw activations (no unit-normalisation per position)
and no learned per-channel weights. The AlexNet trunk is the one LPIPS uses
(:func:`dermsr.evaluate.lpips.resolve_backbone`: ``backbone=``, ``$DERMSR_LPIPS_BACKBONE`` or
the copy shipped with dermsr); nothing is downloaded. The network (plain ``torch.nn``, no
torchvision) is built once per (backbone file, device) in a process and reused; ``clear_cache``
(the same function as :func:`dermsr.evaluate.lpips.clear_cache`) frees it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .lpips import BackboneSource, alexnet_inputs, cached_network, clear_cache, load_backbone_state

__all__ = [
    "FEATURE_LAYER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FeatureDistance",
    "clear_cache",
    "feature_distance",
    "feature_network",
]

#: ImageNet RGB mean and standard deviation on the [0, 1] scale (torchvision's AlexNet input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Index in torchvision's ``AlexNet.features`` of the layer compared: relu5, conv5's ReLU.
FEATURE_LAYER = 11


def _trunk() -> Any:
    """torchvision's ``AlexNet.features`` cut after :data:`FEATURE_LAYER` (module indices kept,
    so the trunk file's keys ``0.weight`` … ``10.bias`` load as they are)."""
    from torch import nn

    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    return features[: FEATURE_LAYER + 1]


def _build(source: BackboneSource, device: Any) -> Any:
    net = _trunk()
    state = load_backbone_state(source.path)  # exactly AlexNet's five convolutions, all finite
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source.path}: does not fit AlexNet's layers ({exc})") from exc
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device)


def feature_network(backbone: str | os.PathLike[str] | None = None, device: str = "cpu") -> Any:
    """AlexNet ``features[:12]`` (conv1 … relu5) as a ``torch.nn.Sequential`` with the trunk's
    ImageNet weights, in eval mode; cached per (backbone file, device) in this process
    (:func:`clear_cache` frees it). It takes ImageNet-normalised input (:data:`IMAGENET_MEAN`,
    :data:`IMAGENET_STD`)."""
    from .._extras import require

    require("metrics", "the feature distance")
    return cached_network("features", backbone, device, _build)


def feature_distance(
    a: Any,
    b: Any,
    *,
    backbone: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    data_range: float | None = None,
    crop_border: int = 0,
    batch_size: int = 4,
) -> float | np.ndarray:
    """Mean squared difference of ImageNet AlexNet's relu5 features of ``a`` and ``b``.

    Inputs as for the other metrics (:mod:`dermsr.evaluate.metrics`); grey images are
    repeated to three channels; each side must be at least 31 pixels after ``crop_border``.
    The network runs in float32 under ``torch.inference_mode``, ``batch_size`` pairs per
    forward pass; the squared differences are averaged in float64. Each image is scored whole
    (no tiling: border effects of the convolutions would change the value). 0 means
    identical; lower is better.

    >>> x = np.zeros((32, 32, 3), np.uint8)
    >>> feature_distance(x, x)  # doctest: +SKIP
    0.0
    """
    from .._extras import require

    require("metrics", "the feature distance")
    import torch

    pair, x, y = alexnet_inputs(a, b, data_range, crop_border, batch_size, "the feature distance (AlexNet)")
    net = feature_network(backbone, device)
    dev = next(net.parameters()).device
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)

    def to_tensor(arr: np.ndarray) -> Any:
        if arr.shape[3] == 1:
            arr = np.repeat(arr, 3, axis=3)
        z = (arr / pair.data_range - mean) / std  # float64, then float32 for the network
        return torch.from_numpy(np.ascontiguousarray(z.transpose(0, 3, 1, 2), dtype=np.float32)).to(dev)

    out = np.empty(x.shape[0])
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            stop = start + batch_size
            n = min(stop, x.shape[0]) - start
            f = net(torch.cat([to_tensor(x[start:stop]), to_tensor(y[start:stop])])).double()
            d = (f[:n] - f[n:]).square().mean(dim=(1, 2, 3))
            out[start:stop] = d.cpu().numpy()
    return out if pair.batched else float(out[0])


@dataclass(frozen=True)
class FeatureDistance:
    """:func:`feature_distance` with its options held.

    >>> FeatureDistance(device="cpu").batch_size
    4
    """

    backbone: str | os.PathLike[str] | None = None
    device: str = "cpu"
    data_range: float | None = None
    crop_border: int = 0
    batch_size: int = 4

    def __call__(self, a: Any, b: Any) -> float | np.ndarray:
        return feature_distance(
            a,
            b,
            backbone=self.backbone,
            device=self.device,
            data_range=self.data_range,
            crop_border=self.crop_border,
            batch_size=self.batch_size,
        )
