"""The networks in PyTorch: SRVGGNetCompact and RRDBNet, with Real-ESRGAN's state-dict layouts.

SRVGGNetCompact, as described by Wang et al. for Real-ESRGAN's compact models: a plain stack of
3×3 convolutions with activations at low resolution, a PixelShuffle to ×s, plus the input
upsampled by nearest neighbour (a global residual). RRDBNet, ESRGAN's generator, is described
at its class. Both are written from the published descriptions; keys match Real-ESRGAN's
released checkpoints so they load unchanged. :class:`Called` wraps a spandrel network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Called", "RRDBNet", "SRVGGNetCompact"]


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"act_type must be prelu, relu or leakyrelu, got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style super-resolution network.

    ``out_scale`` (optional) resizes the ×``upscale`` output bicubically to ×``out_scale``,
    which is how Real-ESRGAN's animevideov3 ×2/×3 NCNN files are built from the ×4 network.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
        out_scale: int | None = None,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale
        self.out_scale = out_scale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)]
        layers.append(_activation(act_type, num_feat))
        for _ in range(num_conv):
            layers.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            layers.append(_activation(act_type, num_feat))
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out = out + base
        if self.out_scale is not None and self.out_scale != self.upscale:
            out = F.interpolate(
                out, scale_factor=self.out_scale / self.upscale, mode="bicubic", align_corners=False
            )
        return out


class _DenseBlock(nn.Module):
    """Five 3×3 convolutions, each reading the block input and every earlier output
    (concatenated); the fifth, scaled by ``residual_scale``, is added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int, residual_scale: float = 0.2) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        for i in range(5):
            out_ch = num_feat if i == 4 else num_grow_ch
            setattr(self, f"conv{i + 1}", nn.Conv2d(num_feat + i * num_grow_ch, out_ch, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(feats, 1))))
        return x + self.residual_scale * self.conv5(torch.cat(feats, 1))


class _RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, their output scaled and added."""

    def __init__(self, num_feat: int, num_grow_ch: int, residual_scale: float = 0.2) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        self.rdb1 = _DenseBlock(num_feat, num_grow_ch)
        self.rdb2 = _DenseBlock(num_feat, num_grow_ch)
        self.rdb3 = _DenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_scale * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN's generator (Wang et al., ESRGAN, ECCV workshops 2018), ×4, as Real-ESRGAN ships it.

    ``conv_first`` → ``num_block`` residual-in-residual dense blocks → ``conv_body``, plus a
    long skip from ``conv_first``; then twice nearest ×2 + 3×3 convolution + LeakyReLU(0.2),
    ``conv_hr`` + LeakyReLU, ``conv_last``. No global residual of the input: the network
    paints the whole image. Module names match Real-ESRGAN's checkpoints
    (``body.N.rdbK.convJ``), so they load unchanged.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(_RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class Called(nn.Module):
    """``net`` run as ``call(net, x)``: how spandrel runs an architecture whose ``forward`` is
    not the whole model (a tuple output, an extra input); see :mod:`dermsr.models.foreign`."""

    def __init__(self, net: nn.Module, call) -> None:
        super().__init__()
        self.net = net
        self._call = call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(self.net, x)
