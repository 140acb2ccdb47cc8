"""Write an SRVGGNetCompact as an NCNN ``.param``/``.bin`` pair from its NumPy weights.

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

import numpy as np

from .ncnn_import import NCNN_MAGIC
from .spec import Model

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ncnn_files"]

INPUT_NAME = "in0"
OUTPUT_NAME = "out0"


def ncnn_files(model: Model) -> tuple[str, bytes]:
    """The ``.param`` text and ``.bin`` bytes of ``model`` (float32 weights, any input size)."""
    cfg = model.config
    w = model.weights
    layers: list[str] = []
    blobs = [INPUT_NAME]
    chunks: list[bytes] = []

    def blob() -> str:
        blobs.append(f"b{len(blobs)}")
        return blobs[-1]

    def layer(kind: str, name: str, ins: list[str], outs: list[str], params: str) -> None:
        layers.append(f"{kind:<24} {name:<24} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}".rstrip())

    def f32(arr: np.ndarray) -> bytes:
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()

    layer("Input", "in0", [], [INPUT_NAME], "")
    trunk, skip = blob(), blob()
    layer("Split", "split_0", [INPUT_NAME], [trunk, skip], "")
    x = trunk
    n_convs = cfg.num_conv + 2
    for i in range(n_convs):
        weight, bias = w[f"body.{2 * i}.weight"], w[f"body.{2 * i}.bias"]
        out_ch = weight.shape[0]
        y = blob()
        layer("Convolution", f"conv_{i}", [x], [y],
              f"0={out_ch} 1=3 11=3 2=1 12=1 3=1 13=1 4=1 14=1 5=1 6={weight.size}")
        chunks += [b"\0\0\0\0", f32(weight), f32(bias)]  # tag 0: float32 weights
        x = y
        if i == n_convs - 1:
            break
        y = blob()
        if cfg.act_type == "prelu":
            slopes = w[f"body.{2 * i + 1}.weight"]
            layer("PReLU", f"act_{i}", [x], [y], f"0={slopes.size}")
            chunks.append(f32(slopes))
        else:
            layer("ReLU", f"act_{i}", [x], [y], "0=0.1" if cfg.act_type == "leakyrelu" else "")
        x = y
    s = float(cfg.upscale)
    shuffled, base = blob(), blob()
    layer("PixelShuffle", "pixelshuffle", [x], [shuffled], f"0={cfg.upscale} 1=0")
    layer("Interp", "upsample_nearest", [skip], [base], f"0=1 1={s} 2={s} 6=0")
    if cfg.resized_output:
        total = blob()
        layer("BinaryOp", "add", [shuffled, base], [total], "0=0")
        r = cfg.scale / cfg.upscale
        layer("Interp", "resize_bicubic", [total], [OUTPUT_NAME], f"0=3 1={r} 2={r} 6=0")
    else:
        layer("BinaryOp", "add", [shuffled, base], [OUTPUT_NAME], "0=0")
    blobs.append(OUTPUT_NAME)
    param = "\n".join([str(NCNN_MAGIC), f"{len(layers)} {len(blobs)}", *layers]) + "\n"
    return param, b"".join(chunks)
