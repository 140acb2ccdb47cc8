"""Write an SRVGGNetCompact or an RRDBNet as an NCNN ``.param``/``.bin`` pair from its NumPy weights.

Pure Python/NumPy: neither torch nor PNNX is needed, which is what lets the NCNN backend run
any model (the fine-tuned ``dermsr-isic-x4``, a user's ``.pth``) on an install without
PyTorch. The graph is the one PNNX produces for :class:`~dermsr.models.arch.SRVGGNetCompact`
traced with dynamic height and width (see :mod:`dermsr.export.ncnn`), with the same blob names
(``in0`` → ``out0``) and the same ``.bin`` bytes (float32 weights behind a zero storage tag,
raw float32 biases and PReLU slopes; the format is described in
:mod:`dermsr.models.ncnn_import`)::

    Input in0 → Split ─→ Convolution (+PReLU | ReLU) … → Convolution → PixelShuffle ─→ BinaryOp add
                      └→ Interp (nearest, ×s, scale factors) ────────────────────────┘
    [→ Interp (bicubic, out_scale/s) for the ×2/×3 animevideov3 models]

Unlike PNNX, ReLU / LeakyReLU stay separate ``ReLU`` layers (PNNX fuses them into the
convolution), so :func:`~dermsr.models.ncnn_import.import_ncnn` reads the files back exactly.

>>> import numpy as np
>>> from dermsr.models import Model, ModelConfig, expected_shapes
>>> cfg = ModelConfig(num_feat=4, num_conv=1)
>>> m = Model("t", cfg, {k: np.zeros(s, np.float32) for k, s in expected_shapes(cfg).items()})
>>> param, binary = ncnn_files(m)
>>> param.splitlines()[:2], len(binary)
(['7767517', '10 11'], 8188)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import UnsupportedModelError
from .ncnn_import import NCNN_MAGIC
from .rrdb import LEAKY_SLOPE, RESIDUAL_SCALE, RRDBConfig
from .spec import Model, ModelConfig

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ncnn_files"]

INPUT_NAME = "in0"
OUTPUT_NAME = "out0"


class _Graph:
    """Layers, blob names and ``.bin`` chunks of an NCNN graph being written."""

    def __init__(self) -> None:
        self.layers: list[str] = []
        self.blobs = [INPUT_NAME]
        self.chunks: list[bytes] = []

    def blob(self) -> str:
        self.blobs.append(f"b{len(self.blobs)}")
        return self.blobs[-1]

    def layer(self, kind: str, name: str, ins: list[str], params: str = "", outs: list[str] | None = None) -> str:
        outs = outs if outs is not None else [self.blob()]
        self.layers.append(f"{kind:<24} {name:<24} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}".rstrip())
        return outs[0]

    def split(self, name: str, x: str, n: int) -> list[str]:
        """``n`` copies of ``x`` (NCNN feeds each blob to exactly one layer)."""
        outs = [self.blob() for _ in range(n)]
        self.layer("Split", name, [x], outs=outs)
        return outs

    def conv(self, name: str, x: str, weight: np.ndarray, bias: np.ndarray, act: str = "",
             outs: list[str] | None = None) -> str:
        """A 3×3 stride-1 pad-1 convolution (float32 weights behind a zero tag); ``act`` is a
        fused activation's parameters (``9=2 -23310=1,0.2`` for LeakyReLU(0.2))."""
        params = (f"0={weight.shape[0]} 1=3 11=3 2=1 12=1 3=1 13=1 4=1 14=1 5=1 6={weight.size} {act}").rstrip()
        self.chunks += [b"\0\0\0\0", _f32(weight), _f32(bias)]
        return self.layer("Convolution", name, [x], params, outs)

    def files(self) -> tuple[str, bytes]:
        """The ``.param`` text and ``.bin`` bytes, once the last layer has written ``out0``."""
        self.blobs.append(OUTPUT_NAME)
        param = "\n".join([str(NCNN_MAGIC), f"{len(self.layers)} {len(self.blobs)}", *self.layers]) + "\n"
        return param, b"".join(self.chunks)


def _f32(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def ncnn_files(model: Model) -> tuple[str, bytes]:
    """The ``.param`` text and ``.bin`` bytes of ``model`` (float32 weights, any input size).

    SRVGGNetCompact and RRDBNet are written; another architecture raises
    :class:`~dermsr.errors.UnsupportedModelError`.
    """
    if isinstance(model.config, RRDBConfig):
        return _rrdb_files(model.config, model.weights)
    if not isinstance(model.config, ModelConfig):
        raise UnsupportedModelError(
            f"NCNN files are written for SRVGGNetCompact and RRDBNet; {model.name!r} is a "
            f"{model.architecture}: run it on the torch or onnxruntime backend"
        )
    cfg = model.config
    w = model.weights
    g = _Graph()
    g.layer("Input", "in0", [], outs=[INPUT_NAME])
    x, skip = g.split("split_0", INPUT_NAME, 2)
    n_convs = cfg.num_conv + 2
    for i in range(n_convs):
        x = g.conv(f"conv_{i}", x, w[f"body.{2 * i}.weight"], w[f"body.{2 * i}.bias"])
        if i == n_convs - 1:
            break
        if cfg.act_type == "prelu":
            slopes = w[f"body.{2 * i + 1}.weight"]
            x = g.layer("PReLU", f"act_{i}", [x], f"0={slopes.size}")
            g.chunks.append(_f32(slopes))
        else:
            x = g.layer("ReLU", f"act_{i}", [x], "0=0.1" if cfg.act_type == "leakyrelu" else "")
    s = float(cfg.upscale)
    shuffled = g.layer("PixelShuffle", "pixelshuffle", [x], f"0={cfg.upscale} 1=0")
    base = g.layer("Interp", "upsample_nearest", [skip], f"0=1 1={s} 2={s} 6=0")
    if cfg.resized_output:
        total = g.layer("BinaryOp", "add", [shuffled, base], "0=0")
        r = cfg.scale / cfg.upscale
        g.layer("Interp", "resize_bicubic", [total], f"0=3 1={r} 2={r} 6=0", outs=[OUTPUT_NAME])
    else:
        g.layer("BinaryOp", "add", [shuffled, base], "0=0", outs=[OUTPUT_NAME])
    return g.files()


def _rrdb_files(cfg: RRDBConfig, w: Mapping[str, np.ndarray]) -> tuple[str, bytes]:
    """RRDBNet with LeakyReLU fused into its convolutions (as Real-ESRGAN's released files and
    :func:`~dermsr.models.ncnn_import.import_ncnn` have it), Concat for the dense connections
    and Eltwise sums with coefficients (0.2, 1) for the scaled residuals."""
    g = _Graph()
    leaky = f"9=2 -23310=1,{LEAKY_SLOPE}"
    resid = f"0=1 -23301=2,{RESIDUAL_SCALE},1.0"

    def conv(key: str, x: str, act: bool = False) -> str:
        return g.conv(key, x, w[f"{key}.weight"], w[f"{key}.bias"], leaky if act else "")

    g.layer("Input", "in0", [], outs=[INPUT_NAME])
    feat, trunk_skip = g.split("split_first", conv("conv_first", INPUT_NAME), 2)
    x = feat
    for b in range(cfg.num_block):
        x, block_skip = g.split(f"split_b{b}", x, 2)
        for r in (1, 2, 3):
            name = f"body.{b}.rdb{r}"
            # copies of each dense input: the block input feeds conv1, four concats and the sum
            pending = [g.split(f"{name}.split0", x, 6)]
            for c in range(1, 6):
                sources = [copies.pop() for copies in pending]
                inp = sources[0] if c == 1 else g.layer("Concat", f"{name}.cat{c}", sources, "0=0")
                y = conv(f"{name}.conv{c}", inp, act=c < 5)
                if c < 5:
                    pending.append(g.split(f"{name}.split{c}", y, 5 - c) if c < 4 else [y])
            x = g.layer("Eltwise", f"{name}.sum", [y, pending[0].pop()], resid)
        x = g.layer("Eltwise", f"body.{b}.sum", [x, block_skip], resid)
    x = g.layer("BinaryOp", "trunk_add", [trunk_skip, conv("conv_body", x)], "0=0")
    for up in ("conv_up1", "conv_up2"):
        x = conv(up, g.layer("Interp", f"{up}.nearest", [x], "0=1 1=2.0 2=2.0 6=0"), act=True)
    x = conv("conv_hr", x, act=True)
    g.conv("conv_last", x, w["conv_last.weight"], w["conv_last.bias"], outs=[OUTPUT_NAME])
    return g.files()
