"""PyTorch → NCNN export through PNNX, with shape-independent ``.param`` files.

The model is traced with ``torch.jit.trace`` and converted by the ``pnnx`` command-line tool
(Tencent/ncnn's PyTorch converter, shipped by the ``pnnx`` wheel; its Python
``pnnx.export`` runs the same two steps but ignores the tool's exit status, so it is not
used). PNNX is given two input shapes (``inputshape`` and ``inputshape2``), which makes it
mark height and width as dynamic; the nearest-neighbour residual then becomes an ``Interp``
layer with scale factors (``0=1 1=4.0 2=4.0``) and no fixed output size, so one ``.param``
serves every input size. :func:`check_param` refuses a file where that is not so.

PNNX names the blobs ``in0``/``out0`` (Real-ESRGAN's released NCNN files use
``data``/``output``). Weights are stored as float32 by default (``fp16=False``), so the file
reproduces PyTorch to float precision whatever the weights; ``fp16=True`` halves the file.

Files written by :func:`export_ncnn`: ``model.ncnn.param``, ``model.ncnn.bin`` and
``dermsr-manifest.json``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from ..errors import BackendUnavailableError, CheckpointError, ExportError
from ..models import load_model
from ..models.foreign import check_native
from ..models.ncnn_import import parse_param
from ..models.spec import Model
from .manifest import build_manifest, write_export
from .onnx import check_tile_shape

__all__ = [
    "BIN_NAME",
    "INPUT_NAME",
    "NCNN_TOOLS",
    "OUTPUT_NAME",
    "PARAM_NAME",
    "check_param",
    "export_ncnn",
    "write_ncnn",
]

INPUT_NAME = "in0"
OUTPUT_NAME = "out0"
PARAM_NAME = "model.ncnn.param"
BIN_NAME = "model.ncnn.bin"
#: distributions whose versions identify an NCNN export (cache key, manifest)
NCNN_TOOLS = ("torch", "pnnx", "ncnn")
#: seconds the pnnx tool may run before the export is abandoned
PNNX_TIMEOUT = 600


def check_param(path: str | Path) -> None:
    """Refuse a ``.param`` that is not a size-independent SRVGGNetCompact graph.

    Checks the ``in0`` input and ``out0`` output blobs, and that every ``Interp`` resizes by
    scale factors (params 1/2) with no fixed output size (params 3/4) and no size taken from
    another blob (param 5). Raises :class:`~dermsr.errors.ExportError` naming the file.
    """
    path = Path(path)
    try:
        layers = parse_param(path)
    except CheckpointError as exc:
        raise ExportError(f"{path}: not a valid NCNN .param: {exc}") from exc
    inputs = [layer for layer in layers if layer.type == "Input"]
    if [layer.outputs for layer in inputs] != [(INPUT_NAME,)]:
        raise ExportError(f"{path}: expected one Input blob {INPUT_NAME!r}, found {[lay.outputs for lay in inputs]}")
    if not any(OUTPUT_NAME in layer.outputs for layer in layers):
        raise ExportError(f"{path}: no layer produces the output blob {OUTPUT_NAME!r}")
    for layer in layers:
        if layer.type != "Interp":
            continue
        fixed = [k for k in (3, 4, 5) if float(layer.params.get(k, 0)) != 0]
        scales = [float(layer.params.get(k, 1.0)) for k in (1, 2)]
        if fixed or scales == [1.0, 1.0]:
            raise ExportError(
                f"{path}: Interp layer {layer.name} resizes to a fixed size "
                f"(params {layer.params}); expected scale factors only, so that one file serves "
                "every input size"
            )


def _pnnx_exe() -> str:
    try:
        import pnnx
    except ImportError as exc:
        raise BackendUnavailableError(
            f"NCNN export needs the 'pnnx' package ({exc}); pip install 'dermsr[ncnn]'"
        ) from exc
    exe = Path(pnnx.EXEC_PATH)
    if not exe.is_file():
        raise BackendUnavailableError(f"the pnnx tool is missing at {exe}; reinstall pnnx")
    return str(exe)


def _shape_arg(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]f32"


def write_ncnn(
    model: Model,
    folder: str | Path,
    *,
    fp16: bool = False,
    tile_shape: tuple[int, int] | None = None,
) -> tuple[Path, Path]:
    """Convert ``model`` with PNNX and write ``model.ncnn.param``/``.bin`` into ``folder``.

    Returns the two paths. The tracing shape is ``tile_shape`` (default 32×32); a second,
    different shape tells PNNX that height and width vary.
    """
    import torch

    check_native(model, "NCNN export")
    exe = _pnnx_exe()
    tile_shape = check_tile_shape(tile_shape)
    h, w = tile_shape or (32, 32)
    c = model.config.num_in_ch
    shape1, shape2 = (1, c, h, w), (1, c, h + 7, w + 3)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # PNNX's work files live inside ``folder``: a cache build killed midway leaves them only in
    # the cache's temporary folder, which the next build of that entry removes
    with tempfile.TemporaryDirectory(prefix=".dermsr-pnnx-", dir=folder) as tmp:
        work = Path(tmp)
        pt = work / "model.pt"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.trace is deprecated; pnnx still reads it
                traced = torch.jit.trace(model.to_torch(), torch.rand(*shape1), check_trace=False)
                traced.save(str(pt))
        except Exception as exc:
            raise ExportError(f"tracing {model.name!r} with torch.jit.trace for PNNX failed: {exc}") from exc
        outputs = {
            "pnnxparam": "model.pnnx.param",
            "pnnxbin": "model.pnnx.bin",
            "pnnxpy": "model_pnnx.py",
            "pnnxonnx": "model.pnnx.onnx",
            "ncnnparam": PARAM_NAME,
            "ncnnbin": BIN_NAME,
            "ncnnpy": "model_ncnn.py",
        }
        cmd = [
            exe,
            str(pt),
            f"inputshape={_shape_arg(shape1)}",
            f"inputshape2={_shape_arg(shape2)}",
            "device=cpu",
            f"fp16={int(bool(fp16))}",
            *(f"{k}={work / v}" for k, v in outputs.items()),
        ]
        try:
            proc = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, errors="replace", timeout=PNNX_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExportError(f"running pnnx failed: {exc}") from exc
        param, binf = work / PARAM_NAME, work / BIN_NAME
        if proc.returncode != 0 or not param.is_file() or not binf.is_file() or binf.stat().st_size == 0:
            log = (proc.stdout + proc.stderr)[-2000:]
            raise ExportError(
                f"pnnx could not convert {model.name!r} (exit status {proc.returncode}); its log ends:\n{log}"
            )
        check_param(param)
        shutil.copyfile(param, folder / PARAM_NAME)
        shutil.copyfile(binf, folder / BIN_NAME)
    return folder / PARAM_NAME, folder / BIN_NAME


def export_ncnn(
    model: Model | str | Path | None,
    out_dir: str | Path,
    *,
    tile_shape: tuple[int, int] | None = None,
    fp16: bool = False,
) -> Path:
    """Write ``model.ncnn.param``/``model.ncnn.bin`` and the manifest into ``out_dir``.

    Returns the manifest's path. The ``.param`` accepts any input size; ``tile_shape`` is
    recorded in the manifest as the shape the app is meant to feed (and used for tracing).
    Files are written atomically.
    """
    m = load_model(model)
    tile_shape = check_tile_shape(tile_shape)
    with tempfile.TemporaryDirectory(prefix="dermsr-ncnn-") as tmp:
        param, binf = write_ncnn(m, tmp, fp16=fp16, tile_shape=tile_shape)
        # .bin before .param: a reader that sees the new .param also finds its weights
        files = {BIN_NAME: binf.read_bytes(), PARAM_NAME: param.read_bytes()}
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    manifest = build_manifest(
        m,
        fmt="ncnn",
        files={"param": PARAM_NAME, "bin": BIN_NAME},
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        tile_shape=tile_shape,
        tools=NCNN_TOOLS,
        extra={
            "ncnn": {
                "converter": "pnnx",
                "weights_dtype": "float16" if fp16 else "float32",
                "size_independent": True,
                "note": "feed a 3-D ncnn::Mat (C, H, W) without mean/norm: values are already [0, 1] RGB",
            },
            "file_sha256": sums,
        },
    )
    return write_export(out_dir, files, manifest)
