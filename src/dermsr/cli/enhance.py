"""``dermsr enhance IN... -o OUT``: super-resolve files or whole folders, resumably.

The work is done by :mod:`dermsr.folder`; this module only parses flags, shows progress (a
bar over the files, and one over the tiles of a large image) and prints the summary. One
input file with ``-o name.png`` (an image suffix) writes exactly that file. Exit status: 0 all
done, 1 some files failed, 2 bad arguments, 130 interrupted (run the same command again to
resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import InputError
from ._options import TILE_HELP, parse_tile


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..models import DEFAULT_MODEL

    p = sub.add_parser(
        "enhance",
        help="super-resolve images",
        description="Super-resolve image files or folders into OUT, mirroring the folder "
        "structure. Outputs keep the input's format unless --format is given; outputs that "
        "exist are skipped unless --overwrite, so an interrupted run resumes where it stopped. "
        "Every file is logged in OUT/manifest.csv as it finishes.",
    )
    p.add_argument("inputs", nargs="*", type=Path, metavar="IN",
                   help="image files or folders (default: the bundled sample images)")
    p.add_argument("-o", "--out", type=Path, default=Path("dermsr-out"),
                   help="output folder (default: ./dermsr-out), or the output file when IN is one "
                        "image file and OUT ends in an image suffix (.png, .jpg, ...)")
    p.add_argument("--model", default=None, help=f"built-in model name or weights file (default: {DEFAULT_MODEL})")
    p.add_argument("--backend", default="auto",
                   help="auto (default: the fastest runtime installed, see 'dermsr info'), ncnn, "
                        "executorch, onnxruntime or torch")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--tile", default="auto", help=TILE_HELP)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "int8"),
                   help="numeric precision (default fp32); bf16: torch or openvino; fp16: torch on CUDA; "
                        "int8: onnxruntime or openvino, calibrated and checked against fp32 (docs/performance.md)")
    p.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                   help="int8: folder of images like yours to calibrate on (default: the bundled samples)")
    p.add_argument("--threads", type=int, default=None,
                   help="runtime threads per worker (default: usable cores // workers)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes, each with its own runtime session (default: 1, in this process)")
    p.add_argument("--format", choices=["png", "jpg", "tif", "webp"], default=None,
                   help="output format (default: same as input; 16-bit inputs default to png)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images of more than N pixels (width × height), checked before "
                   "decoding (default: 67108864 = 8192×8192, or $DERMSR_MAX_IMAGE_PIXELS; 0: no limit)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def set_max_pixels(n: int) -> None:
    """``--max-pixels``: set :data:`dermsr.io.MAX_IMAGE_PIXELS` here and, through its environment
    variable, in the worker processes this run starts (0: no limit)."""
    from .. import io

    if n < 0:
        raise InputError(f"--max-pixels expects a number of pixels >= 0 (0: no limit), got {n}")
    io.MAX_IMAGE_PIXELS = n or None
    os.environ[io.MAX_PIXELS_ENV] = str(n)


def collect_inputs(inputs: list[Path], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every image named or found."""
    from ..folder import find_images

    return find_images(inputs, recursive=recursive)


def default_inputs() -> list[Path]:
    from ..data import sample_dir

    return [sample_dir()]


def output_path(rel: Path, out_dir: Path, fmt: str | None, is16: bool, scale: int) -> Path:
    """``out_dir/<rel folder>/<stem>_x<scale>.<suffix>``; 16-bit images never go to 8-bit formats."""
    from ..folder import output_path as _output_path

    return _output_path(rel, out_dir, fmt, is16, scale)


def single_output(inputs: list[Path], out: Path) -> bool:
    """Whether ``-o OUT`` names one output image: an image suffix, not an existing folder, and
    exactly one input file (else an :class:`InputError` says what to do)."""
    from ..io import IMAGE_SUFFIXES

    if out.suffix.lower() not in IMAGE_SUFFIXES or out.is_dir():
        return False
    if len(inputs) == 1 and inputs[0].is_file():
        return True
    got = "the bundled samples" if not inputs else f"{len(inputs)} input(s) ({', '.join(map(str, inputs[:3]))})"
    raise InputError(f"-o {out} names an image file, which needs exactly one input file; got {got}. "
                     "Give an output folder instead")


def enhance_one(args: argparse.Namespace, enhancer, src: Path, dest: Path) -> int:
    """``dermsr enhance in.png -o out.png``: write exactly ``dest``."""
    from ..folder import FAILED, SKIPPED, Job, process_one

    if args.format is not None and dest.suffix.lower() not in (f".{args.format}", {"jpg": ".jpeg", "tif": ".tiff"}.get(args.format)):
        raise InputError(f"--format {args.format} contradicts the output file name {dest}")
    if dest.resolve() == src.resolve():
        raise InputError(f"{dest}: refusing to overwrite the input file")
    result = process_one(Job(src, dest, Path(dest.name)), enhancer, overwrite=args.overwrite,
                         progress=not args.quiet)
    if result.status == FAILED:
        print(f"dermsr enhance: {src}: {result.error}", file=sys.stderr)
        return 1
    if result.status == SKIPPED:
        print(f"dermsr enhance: {dest} exists, left as is (--overwrite replaces it)", file=sys.stderr)
        return 0
    (w, h), (sw, sh) = result.size_in, result.size_out
    print(f"dermsr enhance: {src} ({w}x{h}) -> {dest} ({sw}x{sh}) on {result.backend} "
          f"in {result.ms / 1e3:.1f} s", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..enhance import Enhancer
    from ..folder import MANIFEST_NAME, OK, Result, enhance_folder, threads_per_worker

    if args.workers < 1:
        raise InputError(f"--workers expects a positive integer, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads expects a positive integer, got {args.threads}")
    if args.max_pixels is not None:
        set_max_pixels(args.max_pixels)
    single = single_output(args.inputs, args.out)
    enhancer = Enhancer(args.model, backend=args.backend, device=args.device, tile=parse_tile(args.tile),
                        threads=threads_per_worker(args.workers, args.threads), precision=args.precision,
                        calibration=args.calibration)
    if single:
        return enhance_one(args, enhancer, args.inputs[0], args.out)
    bars: list[tqdm] = []

    def planned(n: int) -> None:
        bars.append(tqdm(total=n, unit="img", disable=args.quiet or n < 2, file=sys.stderr,
                         dynamic_ncols=True, smoothing=0.1))

    failed = 0

    def finished(result: Result) -> None:
        nonlocal failed
        bar = bars[0]
        bar.update(1)
        if result.status not in (OK, "skipped"):
            failed += 1
            bar.set_postfix(failed=failed, refresh=False)
            tqdm.write(f"dermsr enhance: {result.src}: {result.error}", file=sys.stderr)

    try:
        summary = enhance_folder(args.inputs or default_inputs(), args.out, enhancer,
                                 recursive=args.recursive, fmt=args.format, workers=args.workers,
                                 overwrite=args.overwrite, on_planned=planned, on_result=finished,
                                 progress=not args.quiet and args.workers == 1)
    finally:
        for bar in bars:
            bar.close()
    print(f"dermsr enhance: {summary} -> {args.out} (log: {args.out / MANIFEST_NAME})", file=sys.stderr)
    if summary.interrupted:
        return 130
    return 1 if summary.failed or summary.not_run else 0
