"""``dermsr export --format onnx|ncnn|pte --out DIR``: deployable model files plus a manifest."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from ..errors import BackendUnavailableError, InputError

#: format → (module, function); each is ``f(model, out_dir, *, tile_shape=...) -> manifest path``
EXPORTERS = {
    "onnx": ("dermsr.export.onnx", "export_onnx"),
    "ncnn": ("dermsr.export.ncnn", "export_ncnn"),
    "pte": ("dermsr.export.pte", "export_pte"),
}
#: format → the extra that installs its converter
EXTRA = {"onnx": "export", "ncnn": "export", "pte": "executorch"}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..models import DEFAULT_MODEL

    p = sub.add_parser(
        "export",
        help="export the model for ONNX Runtime, NCNN or ExecuTorch",
        description="Write the model in a runtime's own format (model.onnx; model.ncnn.param + "
        "model.ncnn.bin; model.pte) with dermsr-manifest.json describing inputs, outputs, "
        "value range, scale, tile shape, weights hash and tool versions. Existing files of the "
        "same names in DIR are replaced atomically, under a lock over the whole set, so two "
        "exports into one folder never leave a mix.",
    )
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="target runtime format")
    p.add_argument("--model", default=None,
                   help=f"built-in model name or weights file (default: {DEFAULT_MODEL})")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--tile", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="fixed input shape in low-resolution pixels (ONNX: static height/width; "
                   "NCNN: recorded only, the .param accepts any size; pte: the largest input of the "
                   "dynamic program, default 224 224)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="fp32 (default) or int8: the QDQ graph calibrated on --calibration and checked "
                        "against fp32 on held-out images, --format onnx only (runs on ONNX Runtime and "
                        "OpenVINO); the figures go into dermsr-manifest.json")
    p.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                   help="int8: folder of images like the app's to calibrate on (default: the bundled samples)")
    return p


def exporter(fmt: str):
    """The export function for ``fmt``, imported on demand."""
    if fmt not in EXPORTERS:
        raise InputError(f"unknown export format {fmt!r}; expected one of {sorted(EXPORTERS)}")
    module, func = EXPORTERS[fmt]
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(f"export format {fmt!r} is not available here: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from .._extras import require
    from ..models import load_model

    require(EXTRA[args.format], f"dermsr export --format {args.format}")

    model = load_model(args.model)
    # without --tile each format keeps its own default (dynamic ONNX/NCNN; pte: its default range)
    kwargs: dict = {"tile_shape": tuple(args.tile)} if args.tile else {}
    if args.calibration is not None and args.precision != "int8":
        raise InputError("--calibration is only used with --precision int8")
    if args.precision != "fp32":
        if args.format != "onnx":
            raise InputError(
                f"--precision {args.precision} is written for --format onnx only (QDQ, runs on ONNX Runtime "
                f"and OpenVINO); --format {args.format} exports fp32"
            )
        kwargs.update(calibration=args.calibration)
    export = exporter(args.format)
    if args.precision == "int8":
        from ..export.quantize import export_int8_onnx as export
    manifest_path = Path(export(model, args.out, **kwargs))
    manifest = json.loads(manifest_path.read_text())
    files = ", ".join(str(args.out / name) for name in manifest.get("files", {}).values())
    print(f"exported {model.name} ({args.format}, {args.precision}): {files}; manifest {manifest_path}",
          file=sys.stderr)
    fidelity = manifest.get("quantization", {}).get("fidelity", {}).get("onnxruntime")
    if fidelity:
        print(f"int8 fidelity on held-out crops: worst PSNR vs fp32 {fidelity['min_psnr_vs_fp32']:.2f} dB "
              f"(threshold {fidelity['threshold_db']:g}); PSNR vs ground truth {fidelity['delta_psnr_gt']:+.3f} dB "
              "against fp32", file=sys.stderr)
    return 0
