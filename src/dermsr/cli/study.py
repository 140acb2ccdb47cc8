"""``dermsr study [IMAGES...] --out DIR``: the reference study, reproduced and extended."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "study",
        help="compare the runtimes on degraded images and write a report",
        description="Degrade images with the thesis pipeline, enhance them on every runtime, "
        "and write report.md, a self-contained report.html, results.json and CSV files: "
        "pairwise agreement (MSE/PSNR/SSIM/LPIPS), scores against the ground truth with a "
        "bicubic baseline, inference times, repeated-run consistency and figures.",
    )
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE",
                   help="image files or folders (default: the three bundled ISIC images)")
    p.add_argument("-o", "--out", type=Path, default=Path("dermsr-study"),
                   help="output folder (default: ./dermsr-study)")
    p.add_argument("--backends", default=None,
                   help="comma-separated runtimes, e.g. torch,ncnn,executorch,onnxruntime "
                   "(default: every registered runtime; unavailable ones are skipped with a note)")
    p.add_argument("--runs", type=int, default=5, help="timed inference runs per runtime and image (default 5)")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeated runs compared by the consistency check (default: same as --runs, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation (default 0)")
    p.add_argument("--size", type=int, default=224,
                   help="side of the degraded low-resolution input in pixels (default 224, the thesis's)")
    p.add_argument("--model", default=None, help="built-in model name or weights file (default: realesr-animevideov3-x4)")
    p.add_argument("--lpips-backbone", default=None, metavar="PATH",
                   help="AlexNet weights for LPIPS (default: $DERMSR_LPIPS_BACKBONE, else the copy "
                        "shipped with dermsr; never downloaded)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's own)")
    p.add_argument("--no-resume", action="store_true",
                   help="recompute everything instead of reusing OUT/cache from an earlier run")
    p.add_argument("--dpi", type=int, default=80, help="resolution of the figures (default 80)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _images(items: list[Path]) -> tuple[Path, ...]:
    from ..io import IMAGE_SUFFIXES

    found: list[Path] = []
    for item in items:
        if item.is_dir():
            found.extend(f for f in sorted(item.iterdir())
                         if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    if items and not found:
        raise InputError("no images found in the given inputs")
    return tuple(found)


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("metrics", "dermsr study")
    from ..evaluate.study import StudyConfig, run_study

    backends = None
    if args.backends is not None:
        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        if not backends:
            raise InputError("--backends expects comma-separated runtime names, got an empty list")
    config = StudyConfig(
        images=_images(args.images), backends=backends, runs=args.runs, repeats=args.repeats,
        seed=args.seed, size=args.size, model=args.model, lpips_backbone=args.lpips_backbone, threads=args.threads,
        resume=not args.no_resume, figures=not args.no_figures, dpi=args.dpi, progress=not args.quiet,
    )
    results = run_study(args.out, config)
    cfg = results["config"]
    print(f"studied {len(cfg['images'])} image(s) on {', '.join(cfg['backends_run'])} "
          f"in {results['wall_time_s']:.1f} s -> {args.out / 'report.md'}", file=sys.stderr)
    for s in cfg["backends_skipped"]:
        print(f"  skipped {s['backend']}: {s['reason']}", file=sys.stderr)
    if not cfg["lpips"]["computed"]:
        print(f"  LPIPS skipped: {cfg['lpips']['reason']}", file=sys.stderr)
    return 0
