"""Model description that needs no deep-learning runtime: config, weights as NumPy, metadata.

A :class:`Model` is what every backend receives: a network configuration plus its weights, a
plain mapping of state-dict keys to float32 NumPy arrays, so model metadata, hashing and the
NCNN importer/writer work without importing torch.

The configuration says which architecture the weights belong to. Every configuration class
follows :class:`NetworkConfig`: :class:`ModelConfig` here (SRVGGNetCompact, Real-ESRGAN's
compact network, the default), :class:`~dermsr.models.rrdb.RRDBConfig` (Real-ESRGAN's large
RRDBNet) and :class:`~dermsr.models.foreign.SpandrelConfig` (any architecture the optional
``spandrel`` package recognises, torch-side only).

Over 400 lines because the protocol, SRVGGNetCompact's configuration with its state-dict
reader, and the :class:`Model` every layer above imports belong together; the other
architectures live in their own modules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import CheckpointError
from .sizes import AnySizeNetwork, SizeRequirements

ActType = Literal["prelu", "relu", "leakyrelu"]
ACT_TYPES: tuple[str, ...] = ("prelu", "relu", "leakyrelu")

#: Tile side used by ``tile="auto"``: images up to this size run whole; larger ones are cut
#: into tiles of at most this many low-resolution pixels a side (bounded working memory).
#: A model fact (its tiling hint, as spandrel's descriptors carry one), so the Enhancer and the
#: exporters that size programs for the Enhancer's windows read the same number.
AUTO_TILE = 512

_BODY_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")


@runtime_checkable
class NetworkConfig(Protocol):
    """What every architecture's configuration tells the rest of dermsr.

    ``receptive_field`` is the exact context (low-resolution pixels on each side) an output
    pixel depends on, ``None`` when unknown; ``tile_context`` is the context tiles get by
    default (equal to ``receptive_field`` when that is small enough to be practical, a measured
    or conservative figure otherwise: see each class); ``auto_tile`` the tile side ``tile="auto"``
    uses; ``size_requirements`` the input sizes the network accepts (the Enhancer pads to them);
    ``tile_align`` the multiple tile windows start at (1: anywhere). ``native`` says whether dermsr writes the network for every runtime itself (NCNN
    files, ExecuTorch programs); a non-native network runs on the torch side only.
    """

    architecture: ClassVar[str]
    native: ClassVar[bool]
    num_in_ch: int
    num_out_ch: int

    @property
    def scale(self) -> int: ...

    @property
    def receptive_field(self) -> int | None: ...

    @property
    def tile_context(self) -> int: ...

    @property
    def auto_tile(self) -> int: ...

    @property
    def size_requirements(self) -> SizeRequirements: ...

    @property
    def tile_align(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def details(self) -> dict[str, Any]: ...

    def gflops(self, weights: Mapping[str, np.ndarray], height: int, width: int) -> float | None: ...

    def build_torch(self, weights: Mapping[str, np.ndarray]) -> Any: ...


def check_config_ints(config: Any, names: tuple[str, ...], lo: int = 1) -> None:
    """Raise :class:`~dermsr.errors.CheckpointError` unless each field ``names`` of ``config``
    is an int of at least ``lo``."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < lo:
            want = "a positive int" if lo == 1 else f"an int >= {lo}"
            raise CheckpointError(f"{name} must be {want}, got {value!r}")


def conv_gflops(weights: Mapping[str, np.ndarray], pixels: Mapping[str, float]) -> float:
    """2 × multiply-accumulates of the 4-D ``*.weight`` tensors, each over ``pixels[key]``
    output pixels (GFLOP)."""
    flops = 0.0
    for key, w in weights.items():
        if key.endswith(".weight") and w.ndim == 4:
            flops += 2 * int(np.prod(w.shape)) * pixels[key]
    return flops / 1e9


def torch_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """``weights`` as torch tensors, float32 (integer index buffers keep their dtype), each a
    copy (imports torch: ``pip install 'dermsr[torch]'``)."""
    from .._extras import require

    require("torch", "a model's torch network")
    import torch

    return {k: torch.from_numpy(np.array(v, dtype=np.float32 if _is_float(v) else None))
            for k, v in weights.items()}


def _is_float(arr: np.ndarray) -> bool:
    return np.issubdtype(arr.dtype, np.floating)


@dataclass(frozen=True)
class ModelConfig(AnySizeNetwork):
    """Hyper-parameters of an SRVGGNetCompact.

    ``upscale`` is the PixelShuffle factor of the network itself; ``out_scale`` is the scale
    of the whole model's output. They differ only for models whose ×4 output is resized
    afterwards (Real-ESRGAN's ``animevideov3`` ×2/×3 NCNN files apply a bicubic resize of the
    ×4 output by 0.5 / 0.75).
    """

    architecture: ClassVar[str] = "SRVGGNetCompact"
    native: ClassVar[bool] = True

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16
    upscale: int = 4
    act_type: ActType = "prelu"
    out_scale: int | None = None

    def __post_init__(self) -> None:
        if self.act_type not in ACT_TYPES:
            raise CheckpointError(f"act_type must be one of {ACT_TYPES}, got {self.act_type!r}")
        check_config_ints(self, ("num_in_ch", "num_out_ch", "num_feat", "upscale"))
        check_config_ints(self, ("num_conv",), lo=0)
        if self.out_scale is not None and not (1 <= self.out_scale <= self.upscale):
            raise CheckpointError(
                f"out_scale must be between 1 and upscale={self.upscale}, got {self.out_scale}"
            )

    @property
    def scale(self) -> int:
        """Output size / input size of the whole model."""
        return self.out_scale if self.out_scale is not None else self.upscale

    @property
    def resized_output(self) -> bool:
        return self.scale != self.upscale

    @property
    def receptive_field(self) -> int:
        """Low-resolution pixels of context needed on each side for an exact output.

        ``num_conv + 2`` 3×3 convolutions each widen the field by one pixel; a bicubic resize of
        the output (×2/×3 models) reads up to one more low-resolution pixel.
        """
        return self.num_conv + 2 + (1 if self.resized_output else 0)

    @property
    def tile_context(self) -> int:
        """Tiles get the whole receptive field: tiled output equals untiled output."""
        return self.receptive_field

    @property
    def auto_tile(self) -> int:
        return AUTO_TILE

    def details(self) -> dict[str, Any]:
        return {
            "num_feat": self.num_feat,
            "num_conv": self.num_conv,
            "act_type": self.act_type,
            "network_upscale": self.upscale,
        }

    def gflops(self, weights: Mapping[str, np.ndarray], height: int, width: int) -> float:
        """Every convolution runs at the input resolution."""
        return conv_gflops(weights, dict.fromkeys(weights, height * width))

    def build_torch(self, weights: Mapping[str, np.ndarray]) -> Any:
        from .arch import SRVGGNetCompact

        net = SRVGGNetCompact(**self.to_dict())
        net.load_state_dict(torch_state_dict(weights), strict=True)
        return net

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "num_feat": self.num_feat,
            "num_conv": self.num_conv,
            "upscale": self.upscale,
            "act_type": self.act_type,
            "out_scale": self.out_scale,
        }


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The exact state-dict layout of Real-ESRGAN's SRVGGNetCompact for ``config``.

    ``body`` alternates convolution (even index) and activation (odd index):
    conv(in→f), act, num_conv × [conv(f→f), act], conv(f→out·s²).
    """
    f = config.num_feat
    last = config.num_out_ch * config.upscale**2
    convs = [(f, config.num_in_ch)] + [(f, f)] * config.num_conv + [(last, f)]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (out_ch, in_ch) in enumerate(convs):
        shapes[f"body.{2 * i}.weight"] = (out_ch, in_ch, 3, 3)
        shapes[f"body.{2 * i}.bias"] = (out_ch,)
        if i < len(convs) - 1 and config.act_type == "prelu":
            shapes[f"body.{2 * i + 1}.weight"] = (f,)
    return shapes


def is_compact_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether every key is SRVGGNetCompact's (``body.N.weight``/``body.N.bias``)."""
    return bool(state_dict) and all(_BODY_KEY.match(k) for k in state_dict)


def infer_config(
    state_dict: Mapping[str, Any],
    act_type: ActType | None = None,
    out_scale: int | None = None,
) -> ModelConfig:
    """Read every hyper-parameter of an SRVGGNetCompact off its state dict.

    ``act_type`` is only needed for relu / leakyrelu networks, whose activations carry no
    weights; a PReLU network is recognised by its slopes.
    """
    bad = sorted(k for k in state_dict if not _BODY_KEY.match(k))
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise CheckpointError(
            "not an SRVGGNetCompact state dict: expected only 'body.N.weight'/'body.N.bias' "
            f"keys, found {len(bad)} other key(s): {shown}"
        )
    convs: dict[int, tuple[int, ...]] = {}
    slopes: dict[int, tuple[int, ...]] = {}
    for key, value in state_dict.items():
        m = _BODY_KEY.match(key)
        if m is None:  # pragma: no cover - filtered above
            continue
        shape = tuple(np.shape(value))
        if m.group(2) == "weight":
            (convs if len(shape) == 4 else slopes)[int(m.group(1))] = shape
    if len(convs) < 2:
        raise CheckpointError(
            f"not an SRVGGNetCompact state dict: expected at least 2 convolutions, found {len(convs)}"
        )
    first, last = convs[min(convs)], convs[max(convs)]
    num_feat, num_in_ch = first[0], first[1]
    if slopes:
        found_act: ActType = "prelu"
        if act_type not in (None, "prelu"):
            raise CheckpointError(
                f"act_type={act_type!r} was given but the state dict holds PReLU slopes"
            )
    elif act_type is None:
        raise CheckpointError(
            "the state dict has no PReLU slopes, so its activation is relu or leakyrelu, which "
            "leave no trace in the weights: pass act_type='relu' or act_type='leakyrelu'"
        )
    else:
        found_act = act_type
    num_out_ch = num_in_ch
    sq = last[0] / num_out_ch
    upscale = round(sq**0.5)
    if upscale < 1 or upscale * upscale * num_out_ch != last[0]:
        raise CheckpointError(
            f"last convolution has {last[0]} output channels, expected {num_out_ch}·s² for an "
            f"integer scale s (num_out_ch={num_out_ch})"
        )
    config = ModelConfig(
        num_in_ch=num_in_ch,
        num_out_ch=num_out_ch,
        num_feat=num_feat,
        num_conv=len(convs) - 2,
        upscale=upscale,
        act_type=found_act,
        out_scale=out_scale,
    )
    want = expected_shapes(config)
    got = {k: tuple(np.shape(v)) for k, v in state_dict.items()}
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}")
        if extra:
            parts.append(f"unexpected {extra[:4]}")
        if wrong:
            parts.append(
                "wrong shapes " + ", ".join(f"{k}: expected {want[k]}, got {got[k]}" for k in wrong[:3])
            )
        raise CheckpointError(
            f"state dict does not match SRVGGNetCompact(num_feat={num_feat}, "
            f"num_conv={config.num_conv}, upscale={upscale}): " + "; ".join(parts)
        )
    return config


@dataclass(frozen=True, eq=False)
class Model:
    """A super-resolution network with its weights, independent of any runtime.

    Build one with :func:`dermsr.models.load_model`. ``config`` is the architecture's
    configuration (a :class:`NetworkConfig`: :class:`ModelConfig` for SRVGGNetCompact);
    ``weights`` holds float32 arrays under the architecture's state-dict keys (and, for some
    spandrel architectures, integer index buffers such as SwinIR's ``relative_position_index``).
    """

    name: str
    config: NetworkConfig
    weights: Mapping[str, np.ndarray] = field(repr=False)
    source: str = ""
    license: str = ""

    @property
    def architecture(self) -> str:
        return self.config.architecture

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def receptive_field(self) -> int | None:
        """Exact context in low-resolution pixels per side (``None``: not known)."""
        return self.config.receptive_field

    @property
    def tile_context(self) -> int:
        """Context tiles get by default (see :class:`NetworkConfig`)."""
        return self.config.tile_context

    @property
    def auto_tile(self) -> int:
        """Tile side of ``tile="auto"``: larger images are cut into tiles of at most this side."""
        return self.config.auto_tile

    @property
    def num_params(self) -> int:
        """Floating-point values in the weights (integer index buffers are not counted)."""
        return int(sum(int(np.prod(v.shape)) for v in self.weights.values() if _is_float(v)))

    @cached_property
    def sha256(self) -> str:
        """Hash of the configuration and every weight (keys sorted): the model's identity."""
        h = hashlib.sha256()
        h.update(repr(sorted(self.config.to_dict().items())).encode())
        for key in sorted(self.weights):
            arr = self.weights[key]
            h.update(key.encode())
            if _is_float(arr):
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                h.update(repr(arr.shape).encode())
            else:  # an integer index buffer: its dtype is part of the identity
                arr = np.ascontiguousarray(arr)
                h.update(repr((arr.shape, arr.dtype.str)).encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        """Metadata: architecture, scale, channels, its hyper-parameters, receptive field,
        tile context, parameters, source, hash."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "scale": self.scale,
            "in_channels": self.config.num_in_ch,
            "out_channels": self.config.num_out_ch,
            **self.config.details(),
            "receptive_field": self.receptive_field,
            "tile_context": self.tile_context,
            "size_requirements": self.config.size_requirements.to_dict(),
            "num_params": self.num_params,
            "source": self.source,
            "license": self.license,
            "sha256": self.sha256,
        }

    def gflops(self, height: int, width: int) -> float | None:
        """2 × multiply-accumulates of the convolutions (and, for spandrel architectures, the
        linear layers) for one ``height``×``width`` input, in GFLOP (``None`` where the
        architecture's arithmetic is not known)."""
        return self.config.gflops(self.weights, height, width)

    def state_dict(self) -> dict[str, Any]:
        """The weights as a torch state dict (imports torch: ``pip install 'dermsr[torch]'``)."""
        return torch_state_dict(self.weights)

    def to_torch(self):
        """A ``torch.nn.Module`` in eval mode holding these weights (imports torch)."""
        from .._extras import require

        require("torch", "Model.to_torch()")
        return self.config.build_torch(self.weights).eval()
