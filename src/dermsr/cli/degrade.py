"""``dermsr degrade IN... -o OUT --preset NAME --seed N``: make low-resolution test images."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import DermsrError, InputError
from .enhance import collect_inputs

PRESET_NAMES = ("thesis", "bicubic-x4", "phone", "realistic")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "degrade",
        help="degrade images with a seeded, recorded pipeline",
        description="Degrade image files or folders with a preset pipeline. Writes "
        "<stem>_<preset>.png (8- or 16-bit like the input; the thesis preset's float "
        "224x224 output as 8-bit) and <stem>_<preset>.json, which records the pipeline, the "
        "seed and every random draw. Each image gets its own seed derived from --seed and its "
        "path relative to IN (written in its JSON), so results do not depend on which other "
        "files were processed.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="image files or folders")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--preset", choices=PRESET_NAMES, default="thesis",
                   help="degradation pipeline (default: thesis)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="override a preset parameter, e.g. --set blur_sigma=0.8 or "
                   "--set 'jpeg_range=[50, 90]' (VALUE is JSON, else a string); repeatable")
    p.add_argument("--hr", action="store_true",
                   help="also write the aligned HR reference as <stem>_<preset>_hr.png")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[2, 3]", "c=area"]`` → ``{"a": 1, "b": [2, 3], "c": "area"}``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def image_seed(base: int, rel: Path) -> int:
    """A per-image seed: the first 8 bytes of sha256("<base>:<relative path>")."""
    digest = hashlib.sha256(f"{base}:{rel.as_posix()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _as_image(lr: Any) -> Any:
    """LR array → what a PNG stores: NCHW float → 8-bit HWC (rounded); others keep their dtype."""
    from ..degrade.ops import from_float

    if lr.ndim == 4:  # ToNCHW output: float32 (1, 3, H, W) in [0, 1]
        return from_float(lr[0].transpose(1, 2, 0), "uint8")
    return lr


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..degrade import Degrader
    from ..io import atomic_write_bytes, read_image, write_image

    degrader = Degrader.preset(args.preset, **parse_overrides(args.overrides))
    items = collect_inputs(args.inputs, args.recursive)
    if not items:
        raise InputError("no images found in the given inputs")
    source_ids = {_file_id(src) for src, _ in items} - {None}
    failed = done = skipped = 0
    bar = tqdm(items, unit="img", disable=args.quiet or len(items) < 2, file=sys.stderr)
    for src, rel in bar:
        try:
            base = args.out / rel.parent
            lr_path = base / f"{rel.stem}_{args.preset}.png"
            json_path = lr_path.with_suffix(".json")
            hr_path = base / f"{rel.stem}_{args.preset}_hr.png"
            targets = [lr_path, json_path] + ([hr_path] if args.hr else [])
            for t in targets:
                if _file_id(t) in source_ids:
                    raise InputError(f"{t}: refusing to overwrite an input file")
            if lr_path.exists() and not args.overwrite:
                skipped += 1
                continue
            image = read_image(src)
            seed = image_seed(args.seed, rel)
            result = degrader.apply(image, seed=seed)
            write_image(lr_path, _as_image(result.lr))
            if args.hr:
                write_image(hr_path, result.hr)
            sidecar = {
                "source": str(src),
                "lr_file": lr_path.name,
                "hr_file": hr_path.name if args.hr else None,
                "base_seed": args.seed,
                **result.record,
            }
            atomic_write_bytes(json_path, (json.dumps(sidecar, indent=2) + "\n").encode())
            done += 1
        except (DermsrError, OSError) as exc:
            failed += 1
            tqdm.write(f"dermsr degrade: {src}: {exc}", file=sys.stderr)
    print(f"{done} degraded, {skipped} skipped (exist; --overwrite to redo), {failed} failed "
          f"-> {args.out}", file=sys.stderr)
    return 1 if failed else 0
