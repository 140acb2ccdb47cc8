"""int8 post-training static quantization of the ONNX graph, calibrated on dermatology images,
with a fidelity gate (imports onnx and onnxruntime when called).

(Over 400 lines on purpose: the recipe, the calibration reader and the gate that refuses a
bad result are one procedure, read together when a fidelity figure is doubted.)

Why the obvious recipe breaks
-----------------------------
SRVGGNetCompact's output is ``DepthToSpace(conv_last(body(x))) + Resize_nearest(x)``: the
network only predicts a small correction (here within about ±0.4) on top of the input image
repeated ×4. Everything low-frequency — the colour and brightness of every region — travels
through that skip path, not through the convolutions. ``quantize_static`` with its defaults
puts one QuantizeLinear/DequantizeLinear pair on every tensor a quantizable operator touches:

- the **graph input** gets a range calibrated on the calibration tiles (e.g. [0, 0.914]), and
  the *same* dequantized tensor feeds the nearest-neighbour ``Resize``: every pixel brighter
  than the brightest calibration pixel is clipped in the skip path, and the others are
  rounded to a step that is not 1/255 — a low-frequency error no later layer corrects;
- the **last convolution's output** (the correction) is clipped to its calibrated range and
  rounded to int8 before the ``DepthToSpace``/``Add``;
- the **Add** (the output image itself) is quantized to 256 levels over its calibrated range.

Measured on held-out dermoscopy (docs/performance.md): 32.8 dB worst PSNR against fp32 and
-4.0 dB against the ground truth; excluding only ``Add``/``DepthToSpace``/``Resize`` from
quantization changed nothing (32.8 dB), because the shared input pair still feeds the skip
path. That is the failure reported for NNCF/OpenVINO too (29 dB).

The recipe (``"residual-float"``)
---------------------------------
1. Quantize the body's convolutions only (int8 activations, per-channel int8 weights, QDQ
   format); the PReLU between them runs on dequantized values (ORT has no int8 PReLU). The
   first convolution (3 input channels: 2 % of the arithmetic) and the last (it writes the
   correction itself) stay float32: on the released animevideov3 weights that lifted the
   worst held-out crop from 43.0 to 46.2 dB.
2. The graph input's range is fixed to exactly [0, 1] (the input contract): scale 1/255, so an
   8-bit image passes the first quantizer unchanged and nothing is clipped.
3. Every consumer outside the convolution chain (``Resize``, ``DepthToSpace``, ``Add``, the
   bicubic ``Resize`` of the ×2/×3 models) reads the *float* tensor instead of its
   dequantized copy, and the pairs left unused are removed: the skip path and the last
   convolution's output stay float32, only the body's activations are int8.
4. Activation ranges are the calibration minimum and maximum (MinMax), over the calibration
   tiles *and* a copy of each with its contrast raised ×1.5. Activation ranges depend on
   image content: on a held-out bundled image with hair and sharp borders the body's
   activations reached twice the range seen on the two calibration images, and the clipping
   cost 5 dB (43.3 dB worst). Percentile ranges (99.999) are 2.4 dB better on images like the
   calibration set but clip more on such outliers; the contrast copies cover them
   (47.3 dB worst, docs/performance.md).

``"naive"`` is ``quantize_static``'s defaults (every quantizable operator, MinMax ranges),
kept to show — and to test — that the gate refuses it.

The fidelity gate
-----------------
Every int8 artifact is run against the fp32 graph on held-out images (never used for
calibration) when it is built: the worst PSNR against the fp32 output over the held-out crops
must be at least :data:`MIN_PSNR_VS_FP32` (45 dB), else :class:`~dermsr.errors.FidelityError`
says what was measured and nothing is cached. The figures (per crop, and the mean PSNR
against the ground truth for fp32 and int8) are stored beside the artifact
(``quantization.json``) and in an exported manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    BackendUnavailableError,
    ExportError,
    FidelityError,
    InputError,
    UnsupportedModelError,
)
from ..models.spec import Model, ModelConfig

__all__ = [
    "DEFAULT_RECIPE",
    "INT8_FILE",
    "MIN_PSNR_VS_FP32",
    "QUANT_TOOLS",
    "RECIPES",
    "RECIPE_VERSION",
    "REPORT_FILE",
    "CalibrationSet",
    "FidelityReport",
    "calibration_set",
    "check_fidelity",
    "export_int8_onnx",
    "int8_onnx",
    "measure_fidelity",
    "ort_runner",
    "psnr",
    "quantize_onnx",
    "read_report",
    "without_conv_output_quantizers",
]

#: int8 recipes (see the module docstring); the first is the default.
RECIPES = ("residual-float", "naive")
DEFAULT_RECIPE = RECIPES[0]
#: bump when a recipe's output changes, so cached artifacts are rebuilt
RECIPE_VERSION = 1
#: the gate: worst PSNR (dB) against the fp32 output over the held-out crops
MIN_PSNR_VS_FP32 = 45.0
#: distributions whose versions identify an int8 artifact (cache key, manifest)
QUANT_TOOLS = ("torch", "onnx", "onnxscript", "onnxruntime")

#: How calibration and held-out inputs are made from a folder of full-resolution images:
#: downsized (area) to this short side, degraded by bicubic ÷4 (the benchmarks' degradation),
#: then cut into low-resolution crops.
HR_SHORT_SIDE = 1024
CALIB_TILE = 64
CALIB_TILES_TOTAL = 48
HELD_OUT_TILE = 96
HELD_OUT_PER_IMAGE = 4
HELD_OUT_FRACTION = 0.25
MAX_CALIB_IMAGES = 64
MAX_HELD_OUT_IMAGES = 16
#: residual-float: each calibration tile is also calibrated on with its contrast around its
#: mean multiplied by this (clipped to [0, 1]), so that images with stronger edges than the
#: calibration images are not clipped (see the module docstring, step 4)
CONTRAST_AUGMENT = 1.5
#: operators of the convolution chain; every other consumer reads float tensors
_BODY_OPS = frozenset({"Conv", "PRelu", "Relu", "LeakyRelu"})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, peak 1) of two arrays after clamping both to [0, 1]; ``inf`` when equal.

    >>> psnr(np.zeros(4), np.full(4, 0.1))
    20.0
    """
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0)
    b = np.clip(np.asarray(b, dtype=np.float64), 0.0, 1.0)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else round(10.0 * math.log10(1.0 / mse), 10)


# -- calibration data -------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationSet:
    """Images to calibrate on and images held out for the fidelity gate (split by image).

    ``sha256`` hashes the files' contents, their names and every setting below, so an
    artifact's cache key changes whenever the calibration would.
    """

    source: str
    root: Path
    calibration: tuple[str, ...]
    held_out: tuple[str, ...]
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "calibration_images": list(self.calibration),
            "held_out_images": list(self.held_out),
            "sha256": self.sha256,
            "degradation": f"area to short side {HR_SHORT_SIDE}, bicubic-x4",
            "calibration_tile": CALIB_TILE,
            "calibration_tiles": _tiles_per_image(len(self.calibration)) * len(self.calibration),
            "held_out_tile": HELD_OUT_TILE,
            "held_out_crops": HELD_OUT_PER_IMAGE * len(self.held_out),
        }

    def _lr_hr(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        from ..data.folders import load_hr
        from ..degrade.presets import bicubic_x4

        res = bicubic_x4().apply(load_hr(self.root / name, HR_SHORT_SIDE), seed=0)
        return _nchw(res.lr), _nchw(res.hr)

    def calibration_tiles(self) -> list[np.ndarray]:
        """Low-resolution float32 (1, 3, t, t) crops at seeded positions."""
        per = _tiles_per_image(len(self.calibration))
        out = []
        for name in self.calibration:
            lr, _ = self._lr_hr(name)
            for y, x, t in _positions(name, lr.shape[2:], CALIB_TILE, per):
                out.append(np.ascontiguousarray(lr[:, :, y : y + t, x : x + t]))
        return out

    def held_out_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(label, LR crop, its ground-truth HR crop) for every held-out crop."""
        out = []
        for name in self.held_out:
            lr, hr = self._lr_hr(name)
            for y, x, t in _positions("held-out:" + name, lr.shape[2:], HELD_OUT_TILE, HELD_OUT_PER_IMAGE):
                out.append((f"{name}@{y},{x}", np.ascontiguousarray(lr[:, :, y : y + t, x : x + t]),
                            hr[:, :, 4 * y : 4 * (y + t), 4 * x : 4 * (x + t)]))
        return out


def _nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)


def _tiles_per_image(n_images: int) -> int:
    return max(4, math.ceil(CALIB_TILES_TOTAL / max(1, n_images)))


def _positions(name: str, hw: Sequence[int], tile: int, count: int) -> list[tuple[int, int, int]]:
    """``count`` seeded (y, x, side) crops of an image of size ``hw`` (smaller images: one crop)."""
    h, w = int(hw[0]), int(hw[1])
    t = min(tile, h, w)
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    if t < tile:
        return [(0, 0, t)]
    return [(int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1)), t) for _ in range(count)]


def calibration_set(folder: str | Path | None = None) -> CalibrationSet:
    """The bundled sample images (default) or the images in ``folder``, split by image into
    calibration and held-out sets (:func:`dermsr.data.folders.split_images`, seed 0)."""
    from ..data import sample_dir, sample_images
    from ..data.folders import list_images, split_images
    from .cache import file_sha256

    if folder is None:
        root, source = sample_dir(), "dermsr bundled sample images"
        names = [p.name for p in sample_images()]
    else:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise InputError(f"calibration folder {str(root)!r} does not exist or is not a folder")
        source = str(root.resolve())
        names = [p.relative_to(root).as_posix() for p in list_images(root)]
    if len(names) < 2:
        raise InputError(
            f"int8 calibration needs at least 2 images (one is held out to check fidelity); "
            f"{source} has {len(names)}"
        )
    split = split_images(names, HELD_OUT_FRACTION, seed=0)
    calib = tuple(split.train[:MAX_CALIB_IMAGES])
    held = tuple(split.val[:MAX_HELD_OUT_IMAGES])
    h = hashlib.sha256()
    settings = [HR_SHORT_SIDE, CALIB_TILE, CALIB_TILES_TOTAL, HELD_OUT_TILE, HELD_OUT_PER_IMAGE, "bicubic-x4"]
    h.update(json.dumps(settings).encode())
    for role, group in (("calibration", calib), ("held-out", held)):
        for name in group:
            h.update(f"{role}:{name}:{file_sha256(root / name)}\n".encode())
    return CalibrationSet(source, root, calib, held, h.hexdigest())


# -- fidelity ---------------------------------------------------------------------------------
@dataclass
class FidelityReport:
    """How a reduced-precision runtime's output compares with fp32 on held-out crops."""

    precision: str
    runtime: str
    threshold_db: float
    min_psnr_vs_fp32: float
    mean_psnr_vs_fp32: float
    psnr_gt_fp32: float
    psnr_gt: float
    delta_psnr_gt: float
    crops: int
    per_crop: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.min_psnr_vs_fp32 >= self.threshold_db

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        return (f"worst PSNR vs fp32 {self.min_psnr_vs_fp32:.2f} dB (mean {self.mean_psnr_vs_fp32:.2f}) "
                f"over {self.crops} held-out crops; PSNR vs ground truth {self.psnr_gt:.3f} dB against "
                f"{self.psnr_gt_fp32:.3f} for fp32 ({self.delta_psnr_gt:+.3f} dB)")


Runner = Callable[[np.ndarray], np.ndarray]


def measure_fidelity(reference: Runner, candidate: Runner, pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
                     *, precision: str, runtime: str,
                     threshold: float = MIN_PSNR_VS_FP32) -> FidelityReport:
    """Run ``reference`` (fp32) and ``candidate`` on every held-out (label, LR, HR) crop."""
    if not pairs:
        raise InputError("no held-out crops to measure fidelity on")
    vs, gt_ref, gt_c = {}, [], []
    for label, lr, hr in pairs:
        yr, yc = np.asarray(reference(lr)), np.asarray(candidate(lr))
        vs[label] = psnr(yc, yr)
        gt_ref.append(psnr(yr, hr))
        gt_c.append(psnr(yc, hr))
    values = list(vs.values())
    return FidelityReport(
        precision=precision, runtime=runtime, threshold_db=float(threshold),
        min_psnr_vs_fp32=min(values), mean_psnr_vs_fp32=float(np.mean(values)),
        psnr_gt_fp32=float(np.mean(gt_ref)), psnr_gt=float(np.mean(gt_c)),
        delta_psnr_gt=float(np.mean(gt_c) - np.mean(gt_ref)), crops=len(values), per_crop=vs,
    )


def check_fidelity(report: FidelityReport, what: str) -> FidelityReport:
    """``report`` if it passes its threshold, else a :class:`FidelityError` naming the figures."""
    if not report.passed:
        worst = min(report.per_crop, key=report.per_crop.__getitem__)
        raise FidelityError(
            f"{what} refused: {report.summary()}; the worst crop ({worst}) is below the "
            f"{report.threshold_db:g} dB threshold. Calibrate on images like the ones you will "
            "enhance (calibration=FOLDER), or use precision='fp32'"
        )
    return report


# -- quantization -----------------------------------------------------------------------------
def _require() -> None:
    from ..machine import missing_modules

    missing = missing_modules(("onnx", "onnxruntime", "onnxscript"))
    if missing:
        raise BackendUnavailableError(f"int8 quantization needs {', '.join(missing)}; pip install 'dermsr[onnx]'")


def _keep_float_outside_body(proto: Any) -> None:
    """Recipe step 3: non-body consumers read float tensors; unused Q/DQ nodes are removed."""
    graph = proto.graph
    source: dict[str, str] = {}  # DequantizeLinear output -> the float tensor its Q quantized
    q_input = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_input:
            source[n.output[0]] = q_input[n.input[0]]
    for n in graph.node:
        if n.op_type in _BODY_OPS or n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(n.input):
            if name in source:
                n.input[i] = source[name]
    _remove_dead_quantizers(graph)


def without_conv_output_quantizers(data: bytes) -> bytes:
    """The QDQ graph ``data`` without the QuantizeLinear/DequantizeLinear pairs on convolution
    outputs: each PReLU reads its convolution's float output, so only the convolutions' inputs
    (the PReLU outputs) and weights stay int8 — the form OpenVINO fuses into one int8
    convolution with PReLU and requantization as post-operations. ONNX Runtime needs the
    pairs (its ``QLinearConv`` has an int8 output), so its graph keeps them. Measured with
    OpenVINO on 12 held-out images: 45.9 → 47.5 dB worst PSNR vs fp32, and 0.88× the time."""
    import onnx

    proto = onnx.load_from_string(data)
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    quantizers = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Conv"):
            continue
        for i, name in enumerate(n.input):
            dq = producer.get(name)
            q = quantizers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            src = producer.get(q.input[0]) if q is not None else None
            if src is not None and src.op_type == "Conv":
                n.input[i] = q.input[0]
    _remove_dead_quantizers(graph)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _remove_dead_quantizers(graph: Any) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    live = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in live]:
        graph.initializer.remove(init)


def _chunk(n: int) -> int:
    """Tiles per calibration pass (bounds memory: every intermediate tensor of a pass is kept).
    Not a divisor of ``n``: onnxruntime 1.32 raises "No data is collected" when the last pass
    is empty."""
    return next((k for k in range(16, 1, -1) if n % k), n)


def _contrast(tile: np.ndarray, k: float) -> np.ndarray:
    """``tile`` with its contrast around its mean multiplied by ``k``, clipped to [0, 1]."""
    mean = float(tile.mean())
    return np.clip((tile - mean) * k + mean, 0.0, 1.0).astype(np.float32)


def quantize_onnx(fp32_path: str | Path, tiles: Sequence[np.ndarray], *, recipe: str = DEFAULT_RECIPE) -> bytes:
    """The QDQ int8 ONNX model of ``fp32_path`` calibrated on ``tiles`` (float32 NCHW), as bytes."""
    _require()
    if recipe not in RECIPES:
        raise InputError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if not tiles:
        raise InputError("no calibration tiles")
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    proto = onnx.load(str(fp32_path))
    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{input_name: np.ascontiguousarray(t, dtype=np.float32)} for t in tiles])

        def get_next(self):
            return next(self._it, None)

    kwargs: dict[str, Any] = {}
    if recipe == "residual-float":
        kwargs = {
            "op_types_to_quantize": ["Conv"],
            "extra_options": {
                "TensorQuantOverrides": {input_name: [{"rmin": np.float32(0.0), "rmax": np.float32(1.0)}]},
                "CalibMaxIntermediateOutputs": _chunk(2 * len(tiles)),
            },
        }
        tiles = [*tiles, *(_contrast(t, CONTRAST_AUGMENT) for t in tiles)]
        convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
        kwargs["nodes_to_exclude"] = [convs[0], convs[-1]]  # step 1: first and last stay float
    else:
        kwargs = {"extra_options": {"CalibMaxIntermediateOutputs": _chunk(len(tiles))}}
    with tempfile.TemporaryDirectory(prefix="dermsr-quant-") as tmp:
        out = Path(tmp) / "int8.onnx"
        import logging

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # quantize_static logs advice at WARNING
        try:
            quantize_static(
                str(fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, **kwargs,
            )
        finally:
            logging.getLogger().setLevel(level)
        q = onnx.load(str(out))
    if recipe == "residual-float":
        _keep_float_outside_body(q)
    entry = q.metadata_props.add()
    entry.key, entry.value = "dermsr.precision", f"int8 ({recipe})"
    onnx.checker.check_model(q)
    return q.SerializeToString()


def ort_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A plain ONNX Runtime CPU session on ``path`` as a function (for the gate)."""
    import onnxruntime as ort

    from ..machine import usable_cores

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or usable_cores())
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


INT8_FILE = "model.onnx"
REPORT_FILE = "quantization.json"


def int8_onnx(model: Model, calibration: str | Path | None = None, *, recipe: str = DEFAULT_RECIPE,
              threshold: float = MIN_PSNR_VS_FP32) -> Path:
    """Folder of the cached, gated int8 ONNX artifact of ``model`` (``model.onnx`` +
    ``quantization.json``), built on first use; refused with :class:`FidelityError` when the
    worst held-out PSNR against fp32 is below ``threshold``. The recipe is SRVGGNetCompact's
    (its skip path and output stage stay float); another architecture raises
    :class:`~dermsr.errors.UnsupportedModelError`."""
    if not isinstance(model.config, ModelConfig):
        raise UnsupportedModelError(
            f"int8 is built for SRVGGNetCompact (the recipe keeps its skip path in float); {model.name!r} "
            f"is a {model.architecture}: use precision='fp32' (or 'bf16' on torch)"
        )
    _require()
    from .cache import cached_artifact
    from .manifest import tool_versions
    from .onnx import ONNX_OPSET, cached_onnx

    calib = calibration_set(calibration)
    fp32 = cached_onnx(model)

    def build(folder: Path) -> None:
        path = folder / INT8_FILE
        path.write_bytes(quantize_onnx(fp32, calib.calibration_tiles(), recipe=recipe))
        report = measure_fidelity(ort_runner(fp32), ort_runner(path), calib.held_out_pairs(),
                                  precision="int8", runtime="onnxruntime", threshold=threshold)
        check_fidelity(report, f"the int8 ({recipe}) ONNX model of {model.name!r}")
        record = {"precision": "int8", "recipe": recipe, "recipe_version": RECIPE_VERSION,
                  "format": "ONNX QDQ, per-channel int8 weights, int8 activations",
                  "calibration": calib.describe(), "fidelity": {"onnxruntime": report.to_dict()}}
        (folder / REPORT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))

    def validate(folder: Path) -> None:
        import onnx

        onnx.checker.check_model(str(folder / INT8_FILE))
        if not json.loads((folder / REPORT_FILE).read_text())["fidelity"]["onnxruntime"]["passed"]:
            raise FidelityError("cached int8 artifact did not pass its gate")

    parts = {"precision": "int8", "recipe": recipe, "recipe_version": RECIPE_VERSION,
             "calibration": calib.sha256, "threshold_db": float(threshold), "opset": ONNX_OPSET,
             "tools": tool_versions(QUANT_TOOLS)}
    return cached_artifact("onnx-int8", model.sha256, parts, build, validate)


def read_report(folder: str | Path) -> dict[str, Any]:
    """The ``quantization.json`` of an int8 artifact folder."""
    return json.loads((Path(folder) / REPORT_FILE).read_text())


def export_int8_onnx(model: Model | str | Path | None, out_dir: str | Path, *,
                     tile_shape: tuple[int, int] | None = None,
                     calibration: str | Path | None = None) -> Path:
    """``dermsr export --format onnx --precision int8``: write the gated QDQ int8 graph of
    :func:`int8_onnx` as ``model.onnx`` (float32 input and output, like fp32) and its manifest,
    with the recipe, the calibration set and the fidelity figures under ``quantization``;
    returns the manifest's path. ``tile_shape`` fixes the input's height and width."""
    from ..io import atomic_write_bytes
    from ..models import load_model
    from .cache import file_sha256
    from .manifest import build_manifest, write_manifest
    from .onnx import FILE_NAME, INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, check_tile_shape

    m = load_model(model)
    tile_shape = check_tile_shape(tile_shape)
    folder = int8_onnx(m, calibration)
    data = _fix_spatial_shape((folder / INT8_FILE).read_bytes(), tile_shape, m.scale)
    out = Path(out_dir)
    atomic_write_bytes(out / FILE_NAME, data)
    manifest = build_manifest(
        m, fmt="onnx", files={"model": FILE_NAME}, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
        tile_shape=tile_shape, tools=QUANT_TOOLS,
        extra={
            "onnx": {"opset": ONNX_OPSET, "dynamic_axes": ["batch"] + ([] if tile_shape else ["height", "width"])},
            "file_sha256": {FILE_NAME: file_sha256(out / FILE_NAME)},
            "precision": "int8",
            "quantization": read_report(folder),
        },
    )
    return write_manifest(out, manifest)


def _fix_spatial_shape(data: bytes, tile_shape: tuple[int, int] | None, scale: int) -> bytes:
    """``data`` (a dynamic-shape ONNX model) with its input height and width fixed to
    ``tile_shape`` (the upsampling uses scales, so every other shape follows)."""
    if tile_shape is None:
        return data
    import onnx

    proto = onnx.load_from_string(data)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims[2:], tile_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(value)
    out = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, value in zip(out[2:], tile_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(value) * scale
    del proto.graph.value_info[:]
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"fixing the int8 graph's input to {tile_shape} failed onnx.checker: {exc}") from exc
    return proto.SerializeToString()
