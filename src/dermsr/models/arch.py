"""SRVGGNetCompact in PyTorch, with Real-ESRGAN's state-dict layout (``body.N``).

Architecture as described by Wang et al. for Real-ESRGAN's compact models: a plain stack of
3×3 convolutions with activations at low resolution, a PixelShuffle to ×s, plus the input
upsampled by nearest neighbour (a global residual). Written from the published description;
keys match Real-ESRGAN's released checkpoints so they load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SRVGGNetCompact"]


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
