"""Exact rewrites of SRVGGNetCompact for deployment runtimes (imports torch).

XNNPACK (ExecuTorch's CPU delegate) runs convolutions, transposed convolutions, PReLU and
additions, but not ``PixelShuffle`` with a dynamic shape nor nearest-neighbour upsampling;
those fall back to ExecuTorch's portable kernels (see ``docs/backends/executorch.md``).
Both are pure data movement, and a transposed convolution with ``kernel = stride = r`` and
0/1 weights is the same data movement: each output pixel receives exactly one input value
times 1.0 plus exact zeros, so the result is bit-identical to the original in float32.

* PixelShuffle(r): ``out[c, r·y+i, r·x+j] = in[c·r² + r·i + j, y, x]``, i.e. a transposed
  convolution from ``C·r²`` to ``C`` channels with weight 1 at ``[c·r² + r·i + j, c, i, j]``.
* nearest ×r: ``out[c, r·y+i, r·x+j] = in[c, y, x]``, weight 1 at ``[c, c, i, j]`` for all i, j.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.arch import SRVGGNetCompact

__all__ = ["DeployableSRVGG", "pixel_shuffle_as_deconv", "upsample_nearest_as_deconv"]


def pixel_shuffle_as_deconv(channels: int, r: int) -> nn.ConvTranspose2d:
    """A transposed convolution equal to ``PixelShuffle(r)`` on ``channels·r²`` input channels."""
    deconv = nn.ConvTranspose2d(channels * r * r, channels, kernel_size=r, stride=r, bias=False)
    with torch.no_grad():
        deconv.weight.zero_()
        for c in range(channels):
            for i in range(r):
                for j in range(r):
                    deconv.weight[c * r * r + i * r + j, c, i, j] = 1.0
    return deconv.requires_grad_(False)


def upsample_nearest_as_deconv(channels: int, r: int) -> nn.ConvTranspose2d:
    """A transposed convolution equal to nearest-neighbour upsampling by the integer ``r``."""
    deconv = nn.ConvTranspose2d(channels, channels, kernel_size=r, stride=r, bias=False)
    with torch.no_grad():
        deconv.weight.zero_()
        for c in range(channels):
            deconv.weight[c, c] = 1.0
    return deconv.requires_grad_(False)


class DeployableSRVGG(nn.Module):
    """``net`` with its PixelShuffle and nearest upsampling written as transposed convolutions.

    Shares ``net``'s body layers (no copy of the weights). Outputs are bit-identical to ``net``
    in PyTorch; the optional bicubic resize of ×2/×3 models is kept as is.
    """

    def __init__(self, net: SRVGGNetCompact) -> None:
        super().__init__()
        self.body = net.body
        self.upscale = net.upscale
        self.out_scale = net.out_scale
        self.shuffle = pixel_shuffle_as_deconv(net.num_out_ch, net.upscale)
        self.upsample = upsample_nearest_as_deconv(net.num_in_ch, net.upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.shuffle(out) + self.upsample(x)
        if self.out_scale is not None and self.out_scale != self.upscale:
            out = F.interpolate(
                out, scale_factor=self.out_scale / self.upscale, mode="bicubic", align_corners=False
            )
        return out
