"""Architectures dermsr does not write itself, loaded through the optional ``spandrel`` package.

``pip install 'dermsr[spandrel]'`` lets :func:`dermsr.models.load_model` take a state dict of
any architecture spandrel (MIT, chaiNNer-org/spandrel) recognises: SwinIR, HAT, DAT, RCAN,
SPAN, ESRGAN's old key layout, Real-ESRGAN's ×2 RRDBNet and many more. dermsr reads the file
itself (``.safetensors``, ``.npz``, or ``.pth``/``.ckpt`` through ``torch.load(weights_only=True)``)
and hands spandrel only the tensors, never the file: spandrel's own file loader may unpickle.

What spandrel says about the network becomes a :class:`SpandrelConfig`: architecture name,
scale, channels, purpose, tags, size requirements, tiling advice and the constructor's
hyper-parameters. Such a model runs on the torch side only (``native = False``): PyTorch, and
ONNX Runtime where the architecture exports to ONNX; NCNN, ExecuTorch and OpenVINO refuse it
(:func:`check_native`).

The receptive field of these networks is not known (attention spans whole windows, and
shifted windows chain them), so tiles get a measured, conservative context
(:data:`TILE_CONTEXT`) rather than an exact one; ``tile_pad`` raises it.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import BackendUnavailableError, CheckpointError, UnsupportedModelError
from .sizes import ANY_SIZE, SizeRequirements
from .spec import Model, torch_state_dict

__all__ = ["TILE_CONTEXT", "SpandrelConfig", "check_native", "spandrel_config"]

#: Tile context by default, in low-resolution pixels per side. The receptive field is unknown.
#: On tiny random networks like those of tests/test_spandrel.py, windows aligned (``tile_align``),
#: tiled output was within 2.4e-5 of untiled output from 16 pixels on (SPAN, ESRGAN, SwinIR,
#: HAT, DAT), from 24 for SAFMN, and RCAN, whose channel attention pools the whole image, never
#: matched exactly (3.1e-4 at 32, 6.5e-5 at 48). Real networks are far deeper, so the default is
#: the context measured for the real 23-block RRDBNet (96 pixels kept its tiles within 1e-3,
#: 64 did not: docs/enhancement.md#tiling-rrdbnet), above all of these: a conservative choice,
#: not a bound (docs/models.md); ``tile_pad`` raises it.
TILE_CONTEXT = 96
#: ``tile="auto"`` side by spandrel's tiling advice: supported, discouraged (bigger tiles,
#: fewer seams) and internal (the network tiles itself: the whole image runs at once).
AUTO_TILES = {"supported": 256, "discouraged": 512, "internal": 2**31 - 1}
#: Purposes of spandrel's image-to-image models; inpainting (a mask input) is not one.
PURPOSES = ("SR", "Restoration", "FaceSR")


def _ints(value: Any) -> list[int]:
    """The positive ints in a hyper-parameter (an int, or a nested list of them)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value] if value > 0 else []
    if isinstance(value, (list, tuple)):
        return [i for v in value for i in _ints(v)]
    return []


def _plain(value: Any) -> Any:
    """A hyper-parameter as plain, stable data: classes and functions by qualified name (their
    repr would carry a memory address), sequences as tuples."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


@dataclass(frozen=True)
class SpandrelConfig:
    """A network spandrel recognised, described by what spandrel's descriptor says.

    ``architecture`` is spandrel's architecture id (``"SwinIR"``); ``hyperparameters`` the
    arguments spandrel built the network with, read off the state dict.
    """

    native: ClassVar[bool] = False

    architecture: str
    scale: int
    num_in_ch: int
    num_out_ch: int
    purpose: str = "SR"
    tags: tuple[str, ...] = ()
    size_requirements: SizeRequirements = ANY_SIZE
    tiling: str = "supported"
    hyperparameters: tuple[tuple[str, Any], ...] = ()
    spandrel_version: str = ""

    def __post_init__(self) -> None:
        for name in ("scale", "num_in_ch", "num_out_ch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CheckpointError(f"{name} must be a positive int, got {value!r}")
        if self.tiling not in AUTO_TILES:
            raise CheckpointError(f"tiling must be one of {tuple(AUTO_TILES)}, got {self.tiling!r}")

    @property
    def receptive_field(self) -> None:
        """Unknown for these architectures."""
        return None

    @property
    def tile_context(self) -> int:
        return TILE_CONTEXT

    @property
    def auto_tile(self) -> int:
        return AUTO_TILES[self.tiling]

    @property
    def tile_align(self) -> int:
        """Tile windows start at multiples of this many input pixels: the grid of attention
        windows (``window_size``, ``split_size``, times a leading pixel-unshuffle) and
        ``multiple_of``, so a tile cuts its windows where the whole image does. Without it
        window attention sees differently partitioned windows in every tile, whatever the
        context (measured: docs/models.md)."""
        hp = dict(self.hyperparameters)
        unshuffle = hp.get("start_unshuffle") if isinstance(hp.get("start_unshuffle"), int) else 1
        align = self.size_requirements.multiple_of
        for key in ("window_size", "split_size"):
            for size in _ints(hp.get(key)):
                align = math.lcm(align, size * unshuffle)
        return align

    def details(self) -> dict[str, Any]:
        """spandrel's facts about the network (``dermsr info``, export manifests)."""
        return {
            "loaded_by": f"spandrel {self.spandrel_version}",
            "purpose": self.purpose,
            "tags": list(self.tags),
            "tiling": self.tiling,
            "hyperparameters": dict(self.hyperparameters),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything that identifies the network besides its weights (part of ``Model.sha256``):
        the spandrel version too, since spandrel's code is the network's code."""
        return {
            "architecture": self.architecture,
            "scale": self.scale,
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "purpose": self.purpose,
            "tags": list(self.tags),
            "size_requirements": self.size_requirements.to_dict(),
            "tiling": self.tiling,
            "hyperparameters": dict(self.hyperparameters),
            "spandrel": self.spandrel_version,
        }

    def gflops(self, weights: Mapping[str, np.ndarray], height: int, width: int) -> float | None:
        """2 × multiply-accumulates of every ``Conv2d`` and ``Linear`` layer, counted with
        forward hooks while the network runs on torch's ``meta`` device (shapes only, no
        arithmetic), for the input padded to the size requirements. Attention's matrix products
        and elementwise work are not counted. ``None`` where the network cannot run on ``meta``."""
        import torch

        net = self.build_torch(weights).eval().to("meta")
        total = 0
        pad_h, pad_w = self.size_requirements.padding(height, width)

        def count(module: Any, _inputs: Any, output: Any) -> None:
            nonlocal total
            if isinstance(module, torch.nn.Conv2d):
                k = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            else:
                k = module.in_features
            total += 2 * output.numel() * k

        hooks = [m.register_forward_hook(count) for m in net.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        try:
            with torch.no_grad():
                net(torch.empty(1, self.num_in_ch, height + pad_h, width + pad_w, device="meta"))
        except Exception:  # an architecture that needs real values (data-dependent shapes)
            return None
        finally:
            for hook in hooks:
                hook.remove()
        return total / 1e9

    def build_torch(self, weights: Mapping[str, np.ndarray]) -> Any:
        """The network as spandrel builds it, wrapped so that ``forward`` is spandrel's call of
        it (some architectures return a tuple or take extra inputs); no padding, no clamping."""
        from .arch import Called

        descriptor = _descriptor(weights)
        if descriptor.architecture.id != self.architecture:
            raise CheckpointError(
                f"spandrel now reads these weights as {descriptor.architecture.id}, expected "
                f"{self.architecture} (was spandrel upgraded since the model was loaded?)"
            )
        # spandrel's descriptor keeps how it calls the network only as ``_call_fn``
        return Called(descriptor.model, descriptor._call_fn)


def _require_spandrel(what: str) -> None:
    from .._extras import install_hint, missing

    gone = missing("spandrel")
    if gone:
        raise BackendUnavailableError(
            f"{what} needs {', '.join(map(repr, gone))}, not installed: {install_hint('spandrel')}"
        )


def _descriptor(weights: Mapping[str, np.ndarray]) -> Any:
    """spandrel's model descriptor for ``weights`` (fresh tensors: spandrel may rename keys)."""
    _require_spandrel("a spandrel architecture's network")
    import spandrel

    state = spandrel.canonicalize_state_dict(torch_state_dict(weights))
    with warnings.catch_warnings():  # construction-time deprecation notes of the architectures' code
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return spandrel.ModelLoader(device="cpu").load_from_state_dict(state)


def _brief(exc: Exception, lines: int = 3, chars: int = 400) -> str:
    """The start of an exception's text (torch lists every mismatched tensor)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:lines])
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _keys(weights: Mapping[str, Any]) -> str:
    keys = sorted(weights)
    return ", ".join(keys[:6]) + (f" ... ({len(keys)} keys)" if len(keys) > 6 else "")


def spandrel_config(weights: Mapping[str, np.ndarray], source: str = "state dict",
                    native_error: Exception | None = None) -> SpandrelConfig:
    """The :class:`SpandrelConfig` of ``weights``, read by spandrel.

    ``native_error`` is why dermsr's own readers refused the state dict; it is kept in the
    message when spandrel is missing or does not recognise the weights either.
    """
    from .._extras import install_hint, missing

    why = f"{native_error}; " if native_error else (
        f"{source}: neither an SRVGGNetCompact nor a ×4 RRDBNet state dict (keys: {_keys(weights)}); ")
    gone = missing("spandrel")
    if gone:
        raise CheckpointError(
            f"{why}other architectures load through spandrel, which needs "
            f"{', '.join(map(repr, gone))}, not installed: {install_hint('spandrel')}"
        ) from native_error
    import spandrel

    try:
        descriptor = _descriptor(weights)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{why}spandrel {_version()} does not recognise it either (keys: {_keys(weights)})"
        ) from native_error
    except Exception as exc:
        raise CheckpointError(
            f"{why}spandrel could not build the network these weights describe "
            f"({type(exc).__name__}: {_brief(exc)}; keys: {_keys(weights)})"
        ) from exc
    purpose = str(descriptor.purpose)
    if purpose not in PURPOSES:
        raise UnsupportedModelError(
            f"{source}: a {descriptor.architecture.id} for {purpose}; dermsr runs image-to-image "
            f"networks ({', '.join(PURPOSES)})"
        )
    req = descriptor.size_requirements
    return SpandrelConfig(
        architecture=str(descriptor.architecture.id),
        scale=int(descriptor.scale),
        num_in_ch=int(descriptor.input_channels),
        num_out_ch=int(descriptor.output_channels),
        purpose=purpose,
        tags=tuple(str(t) for t in descriptor.tags),
        size_requirements=SizeRequirements(int(req.minimum), int(req.multiple_of), bool(req.square)),
        tiling=descriptor.tiling.name.lower(),
        hyperparameters=_plain(getattr(descriptor.model, "hyperparameters", {})),
        spandrel_version=_version(),
    )


def _version() -> str:
    try:
        return md.version("spandrel")
    except md.PackageNotFoundError:  # pragma: no cover - imported, so installed
        return "?"


def check_native(model: Model, what: str) -> None:
    """Raise :class:`~dermsr.errors.UnsupportedModelError` unless dermsr writes ``model``'s
    network itself (``config.native``: SRVGGNetCompact, RRDBNet); ``what`` names the runtime or
    exporter that would need it (``"backend 'ncnn'"``)."""
    if not model.config.native:
        raise UnsupportedModelError(
            f"{what} runs dermsr's built-in architectures only (SRVGGNetCompact, RRDBNet); "
            f"{model.name!r} is a {model.architecture} (loaded through spandrel). It runs on "
            "torch (backend='torch'), and on onnxruntime where the architecture exports to ONNX"
        )
