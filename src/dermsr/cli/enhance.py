"""``dermsr enhance IN... -o OUT``: super-resolve files or folders."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import DermsrError, InputError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "enhance",
        help="super-resolve images",
        description="Super-resolve image files or folders. Outputs keep the input's format "
        "unless --format is given; existing outputs are skipped unless --overwrite.",
    )
    p.add_argument("inputs", nargs="*", type=Path, metavar="IN",
                   help="image files or folders (default: the bundled sample images)")
    p.add_argument("-o", "--out", type=Path, default=Path("dermsr-out"),
                   help="output folder (default: ./dermsr-out)")
    p.add_argument("--model", default=None, help="built-in model name or weights file (default: realesr-animevideov3-x4)")
    p.add_argument("--backend", default="torch", help="torch, onnxruntime, ncnn, executorch or auto")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--tile", default="auto", help="tile side in input pixels, 'auto' or 'none'")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all cores)")
    p.add_argument("--format", choices=["png", "jpg", "tif", "webp"], default=None,
                   help="output format (default: same as input; 16-bit inputs default to png)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_tile(value: str) -> int | str | None:
    if value in ("auto", "none", "None", "0"):
        return None if value in ("none", "None", "0") else "auto"
    try:
        tile = int(value)
    except ValueError:
        raise InputError(f"--tile expects a positive integer, 'auto' or 'none', got {value!r}") from None
    if tile < 1:
        raise InputError(f"--tile expects a positive integer, 'auto' or 'none', got {value!r}")
    return tile


def collect_inputs(inputs: list[Path], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every image named or found."""
    from ..io import IMAGE_SUFFIXES

    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(item.glob(pattern)):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((f, f.relative_to(item)))
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise InputError(f"{item}: no such file or folder")
    return found


def default_inputs() -> list[Path]:
    from ..data import sample_dir

    return [sample_dir()]


def output_path(rel: Path, out_dir: Path, fmt: str | None, is16: bool, scale: int) -> Path:
    """``out_dir/<rel folder>/<stem>_x<scale>.<suffix>``; 16-bit images never go to 8-bit formats."""
    suffix = f".{fmt}" if fmt else rel.suffix.lower()
    if is16 and suffix in (".jpg", ".jpeg", ".webp", ".bmp"):
        suffix = ".png"
    return out_dir / rel.with_name(f"{rel.stem}_x{scale}{suffix}")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..enhance import Enhancer
    from ..io import read_image, write_image

    items = collect_inputs(args.inputs or default_inputs(), args.recursive)
    if not items:
        raise InputError("no images found in the given inputs")
    enhancer = Enhancer(args.model, backend=args.backend, device=args.device,
                        tile=parse_tile(args.tile), threads=args.threads)
    failed = done = skipped = 0
    bar = tqdm(items, unit="img", disable=args.quiet or len(items) < 2, file=sys.stderr)
    for src, rel in bar:
        try:
            image = read_image(src)
            dest = output_path(rel, args.out, args.format, image.dtype.itemsize == 2, enhancer.scale)
            if dest.exists() and not args.overwrite:
                skipped += 1
                continue
            if dest.exists() and os.path.samefile(dest, src):
                raise InputError(f"{dest}: refusing to overwrite an input file")
            write_image(dest, enhancer.enhance(image))
            done += 1
        except (DermsrError, OSError) as exc:
            failed += 1
            tqdm.write(f"dermsr enhance: {src}: {exc}", file=sys.stderr)
    print(f"{done} enhanced, {skipped} skipped (exist; --overwrite to redo), {failed} failed -> {args.out}",
          file=sys.stderr)
    return 1 if failed else 0
