"""PyTorch → ONNX export with dynamic batch, height and width.

The graph is captured with ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` +
onnxscript, the default exporter of recent PyTorch), at opset :data:`ONNX_OPSET`, and checked
with ``onnx.checker`` (full check, with shape inference). The nearest-neighbour residual
becomes a ``Resize`` with *scales* (not sizes), and PixelShuffle a ``DepthToSpace`` (CRD), so
one file serves every input size. The exporter's per-node debugging metadata (Python stack
traces with local paths) is removed so the file is small, reproducible and leaks no paths.

Files written by :func:`export_onnx`: ``model.onnx`` plus ``dermsr-manifest.json``.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from ..errors import BackendUnavailableError, ExportError, InputError, UnsupportedModelError
from ..models import load_model
from ..models.spec import Model
from ..validation import is_int
from .manifest import build_manifest, write_export

__all__ = [
    "FILE_NAME",
    "INPUT_NAME",
    "ONNX_OPSET",
    "ONNX_TOOLS",
    "OUTPUT_NAME",
    "cached_onnx",
    "check_tile_shape",
    "export_onnx",
    "onnx_bytes",
]

#: ONNX opset of exported files (supported by onnxruntime ≥ 1.17 and the dynamo exporter).
ONNX_OPSET = 20
INPUT_NAME = "input"
OUTPUT_NAME = "output"
FILE_NAME = "model.onnx"
#: distributions whose versions identify an ONNX export (cache key, manifest)
ONNX_TOOLS = ("torch", "onnx", "onnxscript", "onnxruntime")


def check_tile_shape(tile_shape: object) -> tuple[int, int] | None:
    """``None`` or a ``(height, width)`` pair of positive ints.

    >>> check_tile_shape([224, 160])
    (224, 160)
    """
    if tile_shape is None:
        return None
    try:
        h, w = tile_shape  # type: ignore[misc]
        ok = all(is_int(v) and v >= 1 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"tile_shape must be None or (height, width) positive ints, got {tile_shape!r}")
    return int(h), int(w)


def _require(*modules: str) -> None:
    from ..machine import missing_modules

    missing = missing_modules(modules)
    if missing:
        raise BackendUnavailableError(
            f"ONNX export needs {', '.join(missing)}; pip install 'dermsr[onnx]'"
        )


def onnx_bytes(model: Model, *, tile_shape: tuple[int, int] | None = None, opset: int = ONNX_OPSET) -> bytes:
    """Export ``model`` to a checked, serialised ONNX ``ModelProto``.

    Batch is always dynamic; height and width are dynamic unless ``tile_shape`` fixes them.
    """
    _require("torch", "onnx", "onnxscript")
    import onnx
    import torch

    tile_shape = check_tile_shape(tile_shape)
    net = model.to_torch()
    h, w = tile_shape or (32, 32)
    example = torch.rand(1, model.config.num_in_ch, h, w)
    dims = {0: torch.export.Dim("batch", min=1)}
    if tile_shape is None:
        dims.update({2: torch.export.Dim("height", min=1), 3: torch.export.Dim("width", min=1)})
    shapes: dict | None = {"x": dims}
    if not model.config.native:
        net, shapes = _capture(model, net, example, dims), None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=shapes,
                optimize=True,
                verbose=False,
                report=False,
            )
        proto = program.model_proto
    except Exception as exc:
        if not model.config.native:
            raise _not_exportable(model, exc) from exc
        raise ExportError(f"torch.onnx.export failed for model {model.name!r}: {exc}") from exc
    for node in proto.graph.node:
        del node.metadata_props[:]
    for vi in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        del vi.metadata_props[:]
    proto.doc_string = f"dermsr export of {model.name} ({model.architecture} x{model.scale})"
    for key, value in (
        ("dermsr.scale", str(model.scale)),
        ("dermsr.model_sha256", model.sha256),
        ("dermsr.layout", "NCHW RGB float32 [0,1]"),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported ONNX graph of {model.name!r} fails onnx.checker: {exc}") from exc
    return proto.SerializeToString()


def _capture(model: Model, net, example, dims):
    """``torch.export`` of a spandrel network with dynamic batch, height and width, or
    :class:`UnsupportedModelError`.

    Done here rather than inside ``torch.onnx.export``, whose fallbacks would fix the sizes the
    network's Python code branches on (a static batch of 1, sides that are multiples of the
    window) or, for some architectures (SPAN, torch 2.14), crash the process.
    """
    import torch

    try:
        with warnings.catch_warnings(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
            warnings.simplefilter("ignore")
            return torch.export.export(net, (example,), dynamic_shapes={"x": dims}, strict=False)
    except Exception as exc:
        raise _not_exportable(model, exc) from exc


def _not_exportable(model: Model, exc: Exception) -> UnsupportedModelError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UnsupportedModelError(
        f"{model.architecture} ({model.name!r}) does not export to ONNX with dynamic batch, height "
        f"and width ({type(exc).__name__}: {first[:300]}), so the onnxruntime backend and "
        "`dermsr export --format onnx` cannot take it; the torch backend runs it (backend='torch')"
    )


def cached_onnx(model: Model) -> Path:
    """Path of the cached fp32 ONNX file for ``model`` (dynamic batch/height/width), exported
    on first use into the artifact cache (:mod:`dermsr.export.cache`)."""
    from .cache import cached_artifact
    from .manifest import tool_versions

    def build(folder: Path) -> None:
        (folder / FILE_NAME).write_bytes(onnx_bytes(model, opset=ONNX_OPSET))

    def validate(folder: Path) -> None:
        import onnx

        onnx.checker.check_model(str(folder / FILE_NAME))

    parts = {"opset": ONNX_OPSET, "layout": "NCHW-dynamic-v1", "tools": tool_versions(ONNX_TOOLS)}
    return cached_artifact("onnx", model.sha256, parts, build, validate) / FILE_NAME


def export_onnx(
    model: Model | str | Path | None,
    out_dir: str | Path,
    *,
    tile_shape: tuple[int, int] | None = None,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write ``model.onnx`` and its manifest into ``out_dir``; returns the manifest's path.

    ``tile_shape=(H, W)`` fixes the spatial input size (some mobile runtimes prefer static
    shapes); by default height and width are dynamic. Files are written atomically.
    """
    m = load_model(model)
    tile_shape = check_tile_shape(tile_shape)
    data = onnx_bytes(m, tile_shape=tile_shape, opset=opset)
    manifest = build_manifest(
        m,
        fmt="onnx",
        files={"model": FILE_NAME},
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        tile_shape=tile_shape,
        tools=ONNX_TOOLS,
        extra={
            "onnx": {"opset": opset, "dynamic_axes": ["batch"] + ([] if tile_shape else ["height", "width"])},
            "file_sha256": {FILE_NAME: hashlib.sha256(data).hexdigest()},
            "precision": "fp32",
        },
    )
    return write_export(out_dir, {FILE_NAME: data}, manifest)
