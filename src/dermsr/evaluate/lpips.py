"""LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package: AlexNet trunk, v0.1 linear layers.

The ``lpips`` package fetches its ImageNet AlexNet trunk from torchvision's model zoo when the
network is built. dermsr never lets it, and never downloads anything: the package is asked
for a randomly initialised trunk (``pnet_rand=True``) and every trunk weight is then
replaced, strictly, by a state dict from a file (a missing or extra weight is an error, so no
random weight survives). The file is, in order:

1. the ``backbone=`` path the caller gives (``--lpips-backbone``);
2. the path in the environment variable ``DERMSR_LPIPS_BACKBONE``;
3. the AlexNet ``features`` weights shipped inside dermsr
   (``dermsr/evaluate/weights/alexnet_features.pth``, torchvision's ImageNet weights,
   BSD-3-Clause; provenance and checksum in ``ATTRIBUTION.txt`` beside it).

Paths given in 1 or 2 must exist: dermsr does not fall through to the next source when a
path the user named is wrong. A file may hold the AlexNet ``features`` state dict (keys
``0.weight`` … ``10.bias``) or torchvision's whole AlexNet state dict (``features.0.weight``
…). The v0.1 linear layers ship inside the ``lpips`` package (``pip install 'dermsr[metrics]'``).

Images are mapped to [-1, 1] (``2·x/L − 1``) as the package expects; grey images are
repeated to three channels. The network is built once per (backbone file, device) in each
process and reused.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError, WeightsNotFoundError
from ..validation import check_int
from ._images import Pair, as_pair

__all__ = [
    "ENV_VAR",
    "LPIPS",
    "LPIPS_MIN_SIZE",
    "PACKAGED_BACKBONE",
    "TORCHVISION_FILE",
    "BackboneSource",
    "alexnet_inputs",
    "cached_network",
    "clear_cache",
    "lpips_distance",
    "lpips_network",
    "resolve_backbone",
]

ENV_VAR = "DERMSR_LPIPS_BACKBONE"
#: The AlexNet ``features`` weights shipped with dermsr (used when no other file is given).
PACKAGED_BACKBONE = Path(__file__).with_name("weights") / "alexnet_features.pth"
#: The name of torchvision's full AlexNet file, which ``--lpips-backbone`` also accepts (its
#: ``features.*`` weights are used); dermsr never downloads it.
TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
#: Smallest side AlexNet's layers up to conv5 accept (stride-4 conv, two 3×3/2 max-pools).
LPIPS_MIN_SIZE = 31
#: Convolution indices inside AlexNet's ``features``; their weights and biases are the trunk.
_CONV_KEYS = tuple(f"{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))

_HOW_TO = (
    "LPIPS needs ImageNet AlexNet weights and dermsr never uses random ones nor downloads them. "
    f"They ship with dermsr ({PACKAGED_BACKBONE}); another file can be given as "
    f"backbone='/path/to/alexnet.pth' (--lpips-backbone) or with {ENV_VAR}=/path/to/alexnet.pth. "
    "The file may hold AlexNet's 'features' state dict or the whole torchvision state dict."
)


@dataclass(frozen=True)
class BackboneSource:
    """Where the AlexNet trunk comes from: ``kind`` is 'argument', 'environment' or 'packaged'."""

    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.path} ({self.kind})"


def resolve_backbone(
    backbone: str | os.PathLike[str] | None = None, *, allow_download: bool = False
) -> BackboneSource:
    """Find the AlexNet trunk file: the argument, else ``$DERMSR_LPIPS_BACKBONE``, else the one
    shipped with dermsr. Nothing is downloaded (``allow_download`` is accepted for callers
    written when it could be, and ignored).

    >>> PACKAGED_BACKBONE.is_file()
    True
    >>> resolve_backbone("/no/such/alexnet.pth")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dermsr.errors.WeightsNotFoundError: LPIPS backbone /no/such/alexnet.pth (given as backbone=) does not exist...
    """
    if backbone is not None:
        p = Path(backbone).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"LPIPS backbone {p} (given as backbone=) does not exist. {_HOW_TO}")
        return BackboneSource("argument", p.resolve())
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"LPIPS backbone {p} (from ${ENV_VAR}) does not exist. {_HOW_TO}")
        return BackboneSource("environment", p.resolve())
    if not PACKAGED_BACKBONE.is_file():  # a broken install
        raise WeightsNotFoundError(f"the packaged LPIPS backbone is missing; reinstall dermsr. {_HOW_TO}")
    return BackboneSource("packaged", PACKAGED_BACKBONE)


def load_backbone_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an AlexNet trunk file and return its ``features`` state dict (keys ``0.weight`` …)."""
    import torch

    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: cannot read as a PyTorch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: expected a state dict, got {type(state).__name__}")
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    missing = [k for k in _CONV_KEYS if k not in state]
    extra = sorted(set(state) - set(_CONV_KEYS))
    if missing or extra:
        raise CheckpointError(
            f"{p}: not an AlexNet 'features' state dict; expected keys {list(_CONV_KEYS)}, "
            f"missing {missing}, unexpected {extra[:5]}"
        )
    for k, v in state.items():
        if not torch.is_tensor(v) or not torch.isfinite(v).all():
            raise CheckpointError(f"{p}: weight {k!r} is not a finite tensor")
    return state


def _build(source: BackboneSource, device: Any) -> Any:
    from .._extras import require

    require("metrics", "LPIPS")
    import lpips as lpips_pkg
    import torch

    state = load_backbone_state(source.path)
    with warnings.catch_warnings():
        # pnet_rand=True: torchvision builds an untrained AlexNet (no download; its deprecated
        # 'pretrained=False' call warns, expected here). pretrained=False: the package loads
        # no linear layers itself; they are loaded strictly below.
        warnings.simplefilter("ignore")
        net = lpips_pkg.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    # lpips splits AlexNet's features into slices whose children keep the original indices
    owner = {child: name for name, sl in net.net.named_children() for child, _ in sl.named_children()}
    weights = {f"net.{owner[k.split('.')[0]]}.{k}": v for k, v in state.items()}
    lin_file = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / "alex.pth"
    try:
        lins = torch.load(lin_file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{lin_file}: the lpips package's v0.1 linear layers cannot be read ({exc})") from exc
    weights.update(lins)
    params = {name for name, _ in net.named_parameters()}
    if params != set(weights):
        raise CheckpointError(
            f"{source.path} with {lin_file}: weights do not cover the LPIPS network exactly; "
            f"missing {sorted(params - set(weights))[:5]}, unexpected {sorted(set(weights) - params)[:5]}"
        )
    try:
        # every parameter is in `weights` (checked above); strict=False only because the
        # module also lists the linear layers under a second name ('lins.N') and its buffers
        result = net.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{source.path}: does not fit AlexNet's layers ({exc})") from exc
    if result.unexpected_keys:  # pragma: no cover - excluded by the check above
        raise CheckpointError(f"unexpected LPIPS weights {result.unexpected_keys[:5]}")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device)


#: Networks built on an AlexNet trunk file, by (kind, trunk file, device): LPIPS's and the
#: feature distance's (:mod:`dermsr.evaluate.features`).
_cache: dict[tuple[str, str, str], Any] = {}
_cache_lock = threading.Lock()


def cached_network(
    kind: str,
    backbone: str | os.PathLike[str] | None,
    device: str,
    build: Callable[[BackboneSource, Any], Any],
) -> Any:
    """``build(source, device)`` for the trunk :func:`resolve_backbone` finds, built once per
    (kind, backbone file, device) in this process."""
    from ..enhance.backends.torch import parse_device

    dev = parse_device(device)
    source = resolve_backbone(backbone)
    key = (kind, str(source.path), str(dev))
    with _cache_lock:
        net = _cache.get(key)
        if net is None:
            net = _cache[key] = build(source, dev)
    return net


def lpips_network(
    backbone: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    *,
    allow_download: bool = False,
) -> Any:
    """The ``lpips.LPIPS`` module (AlexNet, v0.1) with the trunk loaded from a file; cached
    per (backbone file, device) in this process (``allow_download`` is ignored)."""
    return cached_network("lpips", backbone, device, _build)


def clear_cache() -> None:
    """Forget the networks built so far, LPIPS's and the feature distance's (frees their memory)."""
    with _cache_lock:
        _cache.clear()


def alexnet_inputs(
    a: Any, b: Any, data_range: float | None, crop_border: int, batch_size: int, what: str
) -> tuple[Pair, np.ndarray, np.ndarray]:
    """The checked pair and its two (N, H, W, C) float64 arrays after ``crop_border``, each side
    at least :data:`LPIPS_MIN_SIZE` pixels (``what`` names the metric in the error)."""
    from .metrics import _check_crop, _crop

    check_int(batch_size, "batch_size", lo=1)
    pair = as_pair(a, b, data_range)
    crop = _check_crop(crop_border)
    x, y = _crop(pair.a, crop), _crop(pair.b, crop)
    h, w = x.shape[1:3]
    if min(h, w) < LPIPS_MIN_SIZE:
        after = f" after crop_border={crop}" if crop else ""
        raise InputError(
            f"{what} needs images of at least {LPIPS_MIN_SIZE}×{LPIPS_MIN_SIZE} pixels, got {h}×{w}{after}"
        )
    return pair, x, y


def lpips_distance(
    a: Any,
    b: Any,
    *,
    backbone: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    data_range: float | None = None,
    crop_border: int = 0,
    batch_size: int = 4,
    allow_download: bool = False,
) -> float | np.ndarray:
    """LPIPS distance (AlexNet, v0.1): 0 for identical images, larger is more different.

    Inputs as for the other metrics (:mod:`dermsr.evaluate.metrics`); each side must be at
    least 31 pixels. Batches are run ``batch_size`` pairs at a time under
    ``torch.inference_mode``; every image is scored whole (LPIPS averages over the image, so
    tiling would change the value). The AlexNet trunk is the packaged one unless ``backbone``
    or ``$DERMSR_LPIPS_BACKBONE`` names another file (:func:`resolve_backbone`);
    ``allow_download`` is ignored: nothing is ever downloaded.

    >>> x = np.zeros((32, 32, 3), np.uint8)
    >>> lpips_distance(x, x)  # doctest: +SKIP
    0.0
    """
    from .._extras import require

    require("metrics", "LPIPS")
    import torch

    pair, x, y = alexnet_inputs(a, b, data_range, crop_border, batch_size, "LPIPS (AlexNet)")
    net = lpips_network(backbone, device, allow_download=allow_download)
    dev = next(net.parameters()).device
    out = np.empty(x.shape[0])

    def to_tensor(arr: np.ndarray) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32))
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        return (t * (2.0 / pair.data_range) - 1.0).to(dev)

    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            stop = start + batch_size
            d = net(to_tensor(x[start:stop]), to_tensor(y[start:stop]))
            out[start:stop] = d.reshape(-1).double().cpu().numpy()
    return out if pair.batched else float(out[0])


@dataclass(frozen=True)
class LPIPS:
    """:func:`lpips_distance` with its options held.

    >>> metric = LPIPS(backbone=None, device="cpu")
    >>> metric.device
    'cpu'
    """

    backbone: str | os.PathLike[str] | None = None
    device: str = "cpu"
    data_range: float | None = None
    crop_border: int = 0
    batch_size: int = 4
    allow_download: bool = False

    def __call__(self, a: Any, b: Any) -> float | np.ndarray:
        return lpips_distance(
            a,
            b,
            backbone=self.backbone,
            device=self.device,
            data_range=self.data_range,
            crop_border=self.crop_border,
            batch_size=self.batch_size,
            allow_download=self.allow_download,
        )
