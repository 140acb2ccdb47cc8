"""RRDBNet (ESRGAN's generator, Real-ESRGAN's ``RealESRGAN_x4plus``): configuration and layout.

Runtime-free like :mod:`dermsr.models.spec`: the configuration, the exact state-dict layout
(Real-ESRGAN's key names), reading the hyper-parameters off a state dict, and the order in
which the convolutions run (what the NCNN reader and writer walk). The torch network is
:class:`dermsr.models.arch.RRDBNet`.

Only the ×4 network is built in (``RealESRGAN_x4plus``, ``RealESRGAN_x4plus_anime_6B`` and
ESRGAN-style ×4 checkpoints with these key names); Real-ESRGAN's ×2 variant, which folds the
input with a pixel-unshuffle first, runs through the ``spandrel`` extra.

>>> cfg = RRDBConfig(num_block=23)
>>> cfg.scale, cfg.receptive_field, len(conv_keys(cfg))
(4, 349, 351)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import CheckpointError
from .sizes import AnySizeNetwork
from .spec import check_config_ints, conv_gflops, torch_state_dict

__all__ = ["RRDBConfig", "conv_keys", "infer_rrdb_config", "is_rrdb_state_dict", "rrdb_expected_shapes"]

#: LeakyReLU slope and residual scale of every dense block, as published and released.
LEAKY_SLOPE = 0.2
RESIDUAL_SCALE = 0.2

#: Tile context by default, in low-resolution pixels per side. The exact receptive field of
#: the 23-block network is 349 pixels, far more than a tile; with 96 pixels tiled output stayed
#: within 1e-3 of untiled output on [0, 1] on skin images (64 pixels: up to 3.4e-3; measured,
#: docs/enhancement.md#tiling-rrdbnet). The 6-block network's 94 pixels fit under it: exact.
TILE_CONTEXT = 96
#: ``tile="auto"`` side: RRDBNet's ×4 features are 64 channels at 16× the input's pixels, so
#: a 256² tile (plus context) already needs about 1.5 GB of activations in float32.
AUTO_TILE = 256

_HEAD = ("conv_first",)
_TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
_KEY = re.compile(r"^(conv_first|conv_body|conv_up1|conv_up2|conv_hr|conv_last|"
                  r"body\.\d+\.rdb[123]\.conv[1-5])\.(weight|bias)$")


@dataclass(frozen=True)
class RRDBConfig(AnySizeNetwork):
    """Hyper-parameters of a ×4 RRDBNet: ``num_block`` residual-in-residual dense blocks of
    ``num_feat`` channels growing by ``num_grow_ch`` per dense convolution."""

    architecture: ClassVar[str] = "RRDBNet"
    native: ClassVar[bool] = True

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32

    def __post_init__(self) -> None:
        check_config_ints(self, ("num_in_ch", "num_out_ch", "num_feat", "num_block", "num_grow_ch"))

    @property
    def scale(self) -> int:
        return 4

    @property
    def receptive_field(self) -> int:
        """Exact context: ``2 + 15·num_block`` 3×3 convolutions at the input resolution, then
        one at ×2 and three at ×4 (half and three quarters of an input pixel): 15·num_block + 4."""
        return 15 * self.num_block + 4

    @property
    def tile_context(self) -> int:
        return min(self.receptive_field, TILE_CONTEXT)

    @property
    def auto_tile(self) -> int:
        return AUTO_TILE

    def details(self) -> dict[str, Any]:
        return {"num_feat": self.num_feat, "num_block": self.num_block, "num_grow_ch": self.num_grow_ch}

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "num_in_ch": self.num_in_ch, "num_out_ch": self.num_out_ch,
                **self.details()}

    def gflops(self, weights: Mapping[str, np.ndarray], height: int, width: int) -> float:
        """The trunk runs at the input resolution, ``conv_up1`` at ×2, the last three at ×4."""
        hw = height * width
        at = {"conv_up1": 4 * hw, "conv_up2": 16 * hw, "conv_hr": 16 * hw, "conv_last": 16 * hw}
        return conv_gflops(weights, {k: at.get(k.rsplit(".", 1)[0], hw) for k in weights})

    def build_torch(self, weights: Mapping[str, np.ndarray]) -> Any:
        from .arch import RRDBNet

        kwargs = {k: v for k, v in self.to_dict().items() if k != "architecture"}
        net = RRDBNet(**kwargs)
        net.load_state_dict(torch_state_dict(weights), strict=True)
        return net


def conv_keys(config: RRDBConfig) -> list[tuple[str, bool]]:
    """Every convolution in the order it runs, with whether a LeakyReLU follows it."""
    keys = [(_HEAD[0], False)]
    for b in range(config.num_block):
        for r in (1, 2, 3):
            keys += [(f"body.{b}.rdb{r}.conv{c}", c < 5) for c in range(1, 6)]
    keys += [("conv_body", False), ("conv_up1", True), ("conv_up2", True), ("conv_hr", True),
             ("conv_last", False)]
    return keys


def rrdb_expected_shapes(config: RRDBConfig) -> dict[str, tuple[int, ...]]:
    """The exact state-dict layout of Real-ESRGAN's RRDBNet (scale 4) for ``config``."""
    f, g = config.num_feat, config.num_grow_ch
    shapes: dict[str, tuple[int, ...]] = {}
    for key, _ in conv_keys(config):
        if key == "conv_first":
            out_ch, in_ch = f, config.num_in_ch
        elif key == "conv_last":
            out_ch, in_ch = config.num_out_ch, f
        elif key.startswith("body."):
            c = int(key[-1])
            out_ch, in_ch = (f if c == 5 else g), f + (c - 1) * g
        else:
            out_ch, in_ch = f, f
        shapes[f"{key}.weight"] = (out_ch, in_ch, 3, 3)
        shapes[f"{key}.bias"] = (out_ch,)
    return shapes


def is_rrdb_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether the keys look like an RRDBNet's (before the shapes are checked)."""
    return "conv_first.weight" in state_dict and "rdb1.conv1" in "".join(state_dict)


def infer_rrdb_config(state_dict: Mapping[str, Any]) -> RRDBConfig:
    """Read every hyper-parameter of a ×4 RRDBNet off its state dict, and check every shape."""
    bad = sorted(k for k in state_dict if not _KEY.match(k))
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        hint = (" (a ×2/×1 RRDBNet or another variant: install dermsr[spandrel] to load it)"
                if any(k.startswith("conv_up3") for k in bad) else "")
        raise CheckpointError(f"not a ×4 RRDBNet state dict: {len(bad)} unexpected key(s): {shown}{hint}")
    try:
        first, last = state_dict["conv_first.weight"], state_dict["conv_last.weight"]
        grow = state_dict["body.0.rdb1.conv1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"not a ×4 RRDBNet state dict: {exc.args[0]!r} is missing") from None
    if np.shape(first)[1] != np.shape(last)[0]:
        raise CheckpointError(
            f"RRDBNet with {np.shape(first)[1]} input and {np.shape(last)[0]} output channels: a ×2 or ×1 "
            "RRDBNet (its input is pixel-unshuffled first) is not built in; install dermsr[spandrel] to load it"
        )
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("body.")}
    config = RRDBConfig(
        num_in_ch=int(np.shape(first)[1]),
        num_out_ch=int(np.shape(last)[0]),
        num_feat=int(np.shape(first)[0]),
        num_block=len(blocks),
        num_grow_ch=int(np.shape(grow)[0]),
    )
    want = rrdb_expected_shapes(config)
    got = {k: tuple(np.shape(v)) for k, v in state_dict.items()}
    if got != want:
        missing = sorted(set(want) - set(got))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        parts = [f"missing {missing[:4]}"] if missing else []
        parts += [f"{k}: expected {want[k]}, got {got[k]}" for k in wrong[:3]]
        raise CheckpointError(
            f"state dict does not match RRDBNet(num_feat={config.num_feat}, num_block={config.num_block}, "
            f"num_grow_ch={config.num_grow_ch}): " + "; ".join(parts)
        )
    return config
