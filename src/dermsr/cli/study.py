"""``dermsr study [IMAGES...] --out DIR``: the reference study, reproduced and extended."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..evaluate.study import StudyConfig
    from ..models import DEFAULT_MODEL

    d = StudyConfig  # every default below is read from the config, so the two cannot drift
    p = sub.add_parser(
        "study",
        help="compare the runtimes on degraded images and write a report",
        description="Degrade images with the thesis pipeline, enhance them on every runtime, "
        "and write report.md, a self-contained report.html, results.json and CSV files: "
        "pairwise agreement (MSE/PSNR/SSIM/LPIPS), scores against the ground truth with a "
        "bicubic baseline and the models compared, inference times measured as dermsr bench "
        "measures them, repeated-run consistency and figures.",
    )
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE",
                   help="image files or folders (default: the three bundled ISIC images)")
    p.add_argument("-o", "--out", type=Path, default=Path("dermsr-study"),
                   help="output folder (default: ./dermsr-study)")
    p.add_argument("--backends", default=None,
                   help="comma-separated runtimes, e.g. torch,ncnn,executorch,onnxruntime "
                   "(default: every registered runtime; unavailable ones are skipped with a note)")
    p.add_argument("--runs", type=int, default=d.runs, help=f"timed inference runs per runtime (default {d.runs})")
    p.add_argument("--repeats", type=int, default=d.repeats,
                   help="repeated runs compared by the consistency check (default: same as --runs, at least 2)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the degradation (default {d.seed})")
    p.add_argument("--size", type=int, default=d.size,
                   help=f"side of the degraded low-resolution input in pixels (default {d.size}, the thesis's)")
    p.add_argument("--model", default=d.model, help=f"built-in model name or weights file (default: {DEFAULT_MODEL})")
    p.add_argument("--compare-models", default=",".join(d.compare_models), metavar="M1,M2",
                   help="further models scored against the ground truth and bicubic on the reference runtime, "
                   f"or 'none' (default: {','.join(d.compare_models)}, the reference study's weights)")
    p.add_argument("--lpips-backbone", default=d.lpips_backbone, metavar="PATH",
                   help="AlexNet weights for LPIPS (default: $DERMSR_LPIPS_BACKBONE, else the copy "
                        "shipped with dermsr; never downloaded)")
    p.add_argument("--threads", type=int, default=d.threads, help="runtime threads (default: the runtime's own)")
    p.add_argument("--no-speed", action="store_true",
                   help="skip the fresh-process timing of each runtime (the dermsr bench method)")
    p.add_argument("--no-resume", action="store_true",
                   help="recompute everything instead of reusing OUT/cache from an earlier run")
    p.add_argument("--dpi", type=int, default=d.dpi, help=f"resolution of the figures (default {d.dpi})")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _images(items: list[Path]) -> tuple[Path, ...]:
    from ..data.folders import find_images

    found = [f for f, _ in find_images(items)]
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
    compare = tuple(m.strip() for m in args.compare_models.split(",") if m.strip() and m.strip() != "none")
    config = StudyConfig(
        images=_images(args.images), backends=backends, runs=args.runs, repeats=args.repeats,
        seed=args.seed, size=args.size, model=args.model, lpips_backbone=args.lpips_backbone, threads=args.threads,
        compare_models=compare, speed=not args.no_speed,
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
