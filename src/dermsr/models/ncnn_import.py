"""Import an NCNN ``.param``/``.bin`` pair of an SRVGGNetCompact or an RRDBNet into a state dict.

Pure Python/NumPy: the NCNN runtime is not needed. Formats, from NCNN's documentation of its
model files: the ``.param`` text starts with the magic ``7767517`` then ``layer_count
blob_count`` and one line per layer (``type name n_in n_out in... out... key=value...``).
In the ``.bin``, a Convolution's weights are preceded by a 4-byte tag (``0x01306B47``: fp16
values, padded to 4 bytes; ``0``: float32); its bias and PReLU slopes are raw float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .rrdb import LEAKY_SLOPE, RESIDUAL_SCALE, RRDBConfig, conv_keys, infer_rrdb_config
from .spec import ModelConfig, NetworkConfig, infer_config

__all__ = ["NcnnLayer", "import_ncnn", "parse_param"]

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, str]
    source: str = "NCNN .param"  # the file, for error messages

    def _bad(self, key: int, expected: str) -> CheckpointError:
        return CheckpointError(
            f"{self.source}: layer {self.name} ({self.type}): parameter {key}={self.params[key]} is "
            f"not {expected}"
        )

    def int_param(self, key: int, default: int | None = None, *, minimum: int | None = None) -> int:
        """Integer parameter ``key`` (``default`` if absent), at least ``minimum`` if given."""
        if key not in self.params:
            if default is None:
                raise CheckpointError(f"{self.source}: layer {self.name} ({self.type}): parameter {key} missing")
            return default
        try:
            value = int(self.params[key])
        except ValueError:
            raise self._bad(key, "an integer") from None
        if minimum is not None and value < minimum:
            raise self._bad(key, f"an integer >= {minimum}")
        return value

    def float_param(self, key: int, default: float, *, positive: bool = False) -> float:
        """Float parameter ``key`` (``default`` if absent); finite, and > 0 if ``positive``."""
        if key not in self.params:
            return default
        try:
            value = float(self.params[key])
        except ValueError:
            raise self._bad(key, "a number") from None
        if not math.isfinite(value) or (positive and value <= 0):
            raise self._bad(key, "a positive finite number" if positive else "a finite number")
        return value


def parse_param(path: str | Path) -> list[NcnnLayer]:
    """Parse an NCNN ``.param`` text file into layers."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable NCNN .param text file ({exc})") from exc
    lines = [ln.strip() for ln in lines if ln.strip()]
    if not lines or lines[0] != str(NCNN_MAGIC):
        raise CheckpointError(f"{path}: expected NCNN magic {NCNN_MAGIC} on the first line")
    try:
        layer_count, _blob_count = (int(t) for t in lines[1].split())
    except (IndexError, ValueError) as exc:
        raise CheckpointError(f"{path}: second line must be 'layer_count blob_count'") from exc
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        tok = line.split()
        try:
            n_in, n_out = int(tok[2]), int(tok[3])
            if n_in < 0 or n_out < 0:
                raise ValueError("negative blob count")
            ins = tuple(tok[4 : 4 + n_in])
            outs = tuple(tok[4 + n_in : 4 + n_in + n_out])
            params = {}
            for kv in tok[4 + n_in + n_out :]:
                k, v = kv.split("=", 1)
                params[int(k)] = v
        except (IndexError, ValueError) as exc:
            raise CheckpointError(f"{path}:{lineno}: malformed layer line {line!r}") from exc
        if len(ins) != n_in or len(outs) != n_out:
            raise CheckpointError(f"{path}:{lineno}: layer line is truncated: {line!r}")
        layers.append(NcnnLayer(tok[0], tok[1], ins, outs, params, str(path)))
    if len(layers) != layer_count:
        raise CheckpointError(
            f"{path}: header says {layer_count} layers, found {len(layers)} (truncated file?)"
        )
    return layers


class _BinReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise CheckpointError(
                f"{self.path}: truncated: {what} needs {nbytes} bytes at offset {self.pos}, "
                f"file has {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw_f32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight blob behind NCNN's 4-byte storage tag."""
        head = self._take(4, what + " tag")
        tag = int.from_bytes(head, "little")
        if tag == TAG_FP16:
            nbytes = (2 * count + 3) // 4 * 4
            blob = self._take(nbytes, what)
            return np.frombuffer(blob[: 2 * count], dtype="<f2").astype(np.float32)
        if tag == 0:
            return self.raw_f32(count, what)
        if tag == TAG_INT8:
            raise CheckpointError(f"{self.path}: {what} is int8-quantised; not supported")
        if sum(head) != 0:  # 256-entry float table + uint8 indices
            table = self.raw_f32(256, what + " table")
            idx = np.frombuffer(self._take((count + 3) // 4 * 4, what), dtype=np.uint8)[:count]
            return table[idx]
        raise CheckpointError(f"{self.path}: {what}: unknown storage tag 0x{tag:08X}")


def import_ncnn(param_path: str | Path, bin_path: str | Path) -> tuple[NetworkConfig, dict[str, np.ndarray]]:
    """Read an SRVGGNetCompact or a ×4 RRDBNet from NCNN files: its config and float32 state dict.

    SRVGGNetCompact: the layer graph must be Input → [Split] → Convolution (+PReLU)... →
    PixelShuffle, with an Interp (nearest) of the input added to it, optionally followed by a
    bicubic Interp of the sum (Real-ESRGAN's ×2/×3 files). RRDBNet (a graph with Concat and
    Eltwise layers): see :func:`_import_rrdb`. Anything else, a truncated ``.bin`` or bytes left
    over raise :class:`~dermsr.errors.CheckpointError`; no partial model is returned.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    layers = parse_param(param_path)
    if not bin_path.is_file():
        raise CheckpointError(f"NCNN weights file not found: {bin_path}")
    reader = _BinReader(bin_path)
    if any(layer.type in ("Concat", "Eltwise") for layer in layers):
        return _import_rrdb(layers, reader, param_path)
    return _import_compact(layers, reader, param_path)


def _conv_weights(layer: NcnnLayer, reader: _BinReader, param_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3×3 stride-1 pad-1 Convolution's weights (out, in, 3, 3) and bias from the ``.bin``."""
    num_output = layer.int_param(0, minimum=1)
    kernel = layer.int_param(1)
    size = layer.int_param(6, minimum=1)
    if kernel != 3 or layer.int_param(4, 0) != 1 or layer.int_param(3, 1) != 1:
        raise CheckpointError(
            f"{param_path}: layer {layer.name}: expected a 3×3 stride-1 pad-1 convolution, "
            f"got kernel={kernel} params={layer.params}"
        )
    if size % (num_output * 9):
        raise CheckpointError(f"{param_path}: layer {layer.name}: weight size {size} "
                              f"is not a multiple of {num_output}×3×3")
    w = reader.tagged(size, f"{layer.name} weights").reshape(num_output, size // (num_output * 9), 3, 3)
    if layer.int_param(5, 0):
        bias = reader.raw_f32(num_output, f"{layer.name} bias")
    else:
        bias = np.zeros(num_output, np.float32)
    return w, bias


def _check_consumed(reader: _BinReader) -> None:
    if reader.pos != len(reader.data):
        raise CheckpointError(
            f"{reader.path}: {len(reader.data) - reader.pos} bytes left over after the last layer: "
            "the .bin does not belong to this .param"
        )


def _fused_leaky(layer: NcnnLayer) -> bool:
    """Whether a Convolution carries a fused LeakyReLU(0.2) (``9=2 -23310=1,0.2``); another
    fused activation is refused."""
    act = layer.int_param(9, 0)
    if act == 0:
        return False
    slope = layer.params.get(-23310, "")
    if act != 2 or not slope.startswith("1,") or abs(float(slope[2:]) - LEAKY_SLOPE) > 1e-6:
        raise CheckpointError(f"{layer.source}: layer {layer.name}: fused activation {act} ({slope}) "
                              f"is not RRDBNet's LeakyReLU({LEAKY_SLOPE})")
    return True


def _import_rrdb(layers: list[NcnnLayer], reader: _BinReader, param_path: Path) -> tuple[RRDBConfig, dict[str, np.ndarray]]:
    """A ×4 RRDBNet as Real-ESRGAN's NCNN files hold it: the convolutions in the order they run
    (LeakyReLU fused into them), Concat for the dense connections, Eltwise sums with
    coefficients (0.2, 1) for the scaled residuals, one BinaryOp add for the long skip and two
    nearest ×2 Interps. The convolutions are matched to Real-ESRGAN's keys in running order;
    each one's shape and fused activation must be the ones that key has."""
    convs = [layer for layer in layers if layer.type == "Convolution"]
    allowed = {"Input", "Split", "Concat", "Convolution", "Eltwise", "BinaryOp", "Interp"}
    other = [f"{layer.name} ({layer.type})" for layer in layers if layer.type not in allowed]
    if other:
        raise CheckpointError(f"{param_path}: layers not part of an RRDBNet: {', '.join(other[:3])}")
    num_block, rest = divmod(len(convs) - 6, 15)
    if rest or num_block < 1:
        raise CheckpointError(f"{param_path}: {len(convs)} convolutions; an RRDBNet has 15·blocks + 6")
    for layer in layers:
        if layer.type == "Eltwise":
            coeffs = [float(c) for c in layer.params.get(-23301, "").split(",")[1:]]
            if layer.int_param(0, 1) != 1 or len(coeffs) != 2 or abs(coeffs[0] - RESIDUAL_SCALE) > 1e-6 \
                    or abs(coeffs[1] - 1) > 1e-6:
                raise CheckpointError(f"{param_path}: layer {layer.name}: expected a sum with "
                                      f"coefficients ({RESIDUAL_SCALE}, 1), got {layer.params}")
        if layer.type == "Interp" and (layer.int_param(0, 0) != 1 or layer.float_param(1, 1.0) != 2.0):
            raise CheckpointError(f"{param_path}: layer {layer.name}: expected a nearest ×2 Interp")
    if sum(layer.type == "Interp" for layer in layers) != 2:
        raise CheckpointError(f"{param_path}: a ×4 RRDBNet upsamples twice (two Interp layers)")
    weights: dict[str, np.ndarray] = {}
    keys = conv_keys(RRDBConfig(num_block=num_block))
    for layer, (key, leaky) in zip(convs, keys, strict=True):
        if _fused_leaky(layer) != leaky:
            raise CheckpointError(f"{param_path}: layer {layer.name} ({key}) should "
                                  f"{'' if leaky else 'not '}be followed by a LeakyReLU")
        weights[f"{key}.weight"], weights[f"{key}.bias"] = _conv_weights(layer, reader, param_path)
    _check_consumed(reader)
    return infer_rrdb_config(weights), weights


def _import_compact(layers: list[NcnnLayer], reader: _BinReader, param_path: Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    weights: dict[str, np.ndarray] = {}
    act_type = None
    body = 0
    pixel_shuffle = None
    out_resize = None
    for layer in layers:
        t = layer.type
        if t in ("Input", "Split", "BinaryOp"):
            continue
        if t == "Convolution":
            weights[f"body.{body}.weight"], weights[f"body.{body}.bias"] = _conv_weights(layer, reader, param_path)
            body += 1
        elif t == "PReLU":
            n = layer.int_param(0, 1, minimum=1)
            weights[f"body.{body}.weight"] = reader.raw_f32(n, f"{layer.name} slopes")
            body += 1
        elif t == "ReLU":
            act_type = "leakyrelu" if layer.float_param(0, 0.0) else "relu"
            body += 1
        elif t == "PixelShuffle":
            pixel_shuffle = layer.int_param(0, minimum=1)
        elif t == "Interp":
            mode = layer.int_param(0, 0)
            scale = layer.float_param(1, 1.0, positive=True)
            if pixel_shuffle is None:
                raise CheckpointError(f"{param_path}: Interp {layer.name} before PixelShuffle")
            if mode == 1 and abs(scale - pixel_shuffle) < 1e-6:
                continue  # the nearest-neighbour residual branch
            if mode == 3:
                out_resize = scale
                continue
            raise CheckpointError(
                f"{param_path}: layer {layer.name}: unexpected Interp mode={mode} scale={scale}"
            )
        else:
            raise CheckpointError(
                f"{param_path}: layer {layer.name} of type {t} is not part of an SRVGGNetCompact"
            )
    _check_consumed(reader)
    out_scale = None
    if out_resize is not None:
        out_scale_f = out_resize * (pixel_shuffle or 1)
        out_scale = round(out_scale_f)
        if abs(out_scale - out_scale_f) > 1e-6:
            raise CheckpointError(f"{param_path}: output resize gives non-integer scale {out_scale_f}")
    config = infer_config(weights, act_type=act_type, out_scale=out_scale)
    if pixel_shuffle is not None and pixel_shuffle != config.upscale:
        raise CheckpointError(
            f"{param_path}: PixelShuffle factor {pixel_shuffle} does not match the last "
            f"convolution's {config.num_out_ch * config.upscale**2} channels"
        )
    return config, weights
