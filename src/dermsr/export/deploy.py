"""Exact rewrites of SRVGGNetCompact's output stage for deployment runtimes (imports torch).

As written, the network ends ``PixelShuffle(r)(conv(features)) + nearest_upsample(x, r)``.
ExecuTorch's XNNPACK delegate runs convolutions, transposed convolutions, PReLU and additions,
but not nearest-neighbour upsampling (always left to ExecuTorch's portable kernels) nor the
reshapes of PixelShuffle when the shape is dynamic. Two rewrites avoid that; both give output
bit-identical to the original in float32 (every value is the same single addition of the same
two operands, and 0/1 weights move data without rounding):

``"residual-first"``
    Add the input *before* the shuffle: ``PixelShuffle(r)(conv(features) + R(x))``, where
    ``R`` is a 1×1 convolution with 0/1 weights that repeats each input channel r² times, so
    that after the shuffle every output pixel of channel c gets ``x[c]`` of its source pixel —
    exactly the nearest upsampling. No upsampling operator is left; PixelShuffle is still a
    reshape.
``"deconv"``
    Write PixelShuffle and the upsampling as transposed convolutions with
    ``kernel = stride = r`` and 0/1 weights (one input value × 1.0 plus exact zeros per
    output pixel). Nothing but convolutions remains, so XNNPACK takes the whole network even
    with dynamic shapes, at the price of ~48 multiply-adds per output value.

``"as-written"`` keeps the network unchanged. ``docs/backends/executorch.md`` has the
measurements that chose ``"residual-first"`` as the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.arch import SRVGGNetCompact
from .graphs import GRAPHS

__all__ = [
    "GRAPHS",
    "DeployableSRVGG",
    "pixel_shuffle_as_deconv",
    "repeat_channels_conv",
    "upsample_nearest_as_deconv",
]

def repeat_channels_conv(channels: int, r: int) -> nn.Conv2d:
    """1×1 convolution mapping ``channels`` to ``channels·r²``: output ``c·r² + k`` = input ``c``."""
    conv = nn.Conv2d(channels, channels * r * r, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[c * r * r : (c + 1) * r * r, c] = 1.0
    return conv.requires_grad_(False)


def pixel_shuffle_as_deconv(channels: int, r: int) -> nn.ConvTranspose2d:
    """A transposed convolution equal to ``PixelShuffle(r)`` on ``channels·r²`` input channels.

    PixelShuffle: ``out[c, r·y+i, r·x+j] = in[c·r² + r·i + j, y, x]``, so the weight is 1 at
    ``[c·r² + r·i + j, c, i, j]`` and 0 elsewhere.
    """
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
    """``net`` with its output stage written as ``graph`` (see the module docstring).

    Shares ``net``'s body layers (no copy of the weights); the bicubic resize of the ×2/×3
    models stays a bicubic resize (ExecuTorch decomposes it into portable kernels).
    """

    def __init__(self, net: SRVGGNetCompact, graph: str = "residual-first") -> None:
        super().__init__()
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
        if net.num_in_ch != net.num_out_ch:  # pragma: no cover - the architecture adds x to the output
            raise ValueError("the residual needs as many input as output channels")
        self.graph = graph
        self.body = net.body
        self.upscale = net.upscale
        self.out_scale = net.out_scale
        c, r = net.num_out_ch, net.upscale
        if graph == "residual-first":
            self.repeat = repeat_channels_conv(c, r)
            self.shuffle: nn.Module = nn.PixelShuffle(r)
        elif graph == "deconv":
            self.shuffle = pixel_shuffle_as_deconv(c, r)
            self.upsample = upsample_nearest_as_deconv(c, r)
        else:
            self.shuffle = nn.PixelShuffle(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        if self.graph == "residual-first":
            out = self.shuffle(out + self.repeat(x))
        elif self.graph == "deconv":
            out = self.shuffle(out) + self.upsample(x)
        else:
            out = self.shuffle(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.out_scale is not None and self.out_scale != self.upscale:
            # the same resize as the network's scale_factor=out_scale/upscale (bit-identical,
            # tested), but with the output size spelled out so that torch.export can keep it
            # symbolic; a float scale factor on a dynamic size does not lower to ExecuTorch
            size = (x.shape[-2] * self.out_scale, x.shape[-1] * self.out_scale)
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False)
        return out
