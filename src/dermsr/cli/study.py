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
        help="compare models and runtimes on degraded images and write a report",
        description="Degrade images with the thesis pipeline, enhance them with every model on every "
        "runtime, and write report.md, a self-contained report.html, results.json and CSV files: "
        "the models side by side against the ground truth with a bicubic baseline (a verdict each, "
        "wins per image, speed, the same crop), pairwise agreement of the runtimes (MSE/PSNR/SSIM/LPIPS), "
        "inference times measured as dermsr bench measures them, repeated-run consistency and figures.",
    )
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE",
                   help="image files or folders (default: the three bundled ISIC images)")
    p.add_argument("-o", "--out", type=Path, default=Path("dermsr-study"),
                   help="output folder (default: ./dermsr-study)")
    p.add_argument("--backends", default=None,
                   help="comma-separated runtimes, e.g. torch,ncnn,executorch,onnxruntime "
                   "(default: every registered runtime; unavailable ones are skipped with a note)")
    p.add_argument("--runs", type=int, default=d.runs,
                   help=f"timed inference runs per model, runtime and image, and per speed cell (default {d.runs})")
    p.add_argument("--repeats", type=int, default=d.repeats,
                   help="repeated runs compared by the consistency check (default: same as --runs, at least 2; "
                   "0 skips the check, to keep a study of slow models affordable)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the degradation (default {d.seed})")
    p.add_argument("--size", type=int, default=d.size,
                   help=f"side of the degraded low-resolution input in pixels (default {d.size}, the thesis's)")
    p.add_argument("--models", default=None, metavar="M1,M2,...",
                   help="models compared side by side (built-in names or weights files), each run on every "
                   "runtime and scored against the ground truth and bicubic; the first is the main one "
                   f"(default: {DEFAULT_MODEL},{','.join(d.compare_models)})")
    p.add_argument("--model", default=None,
                   help="the main model: --model M --compare-models A,B is another way to write --models M,A,B "
                   f"(use one form, not both; default: {DEFAULT_MODEL})")
    p.add_argument("--compare-models", default=None, metavar="M1,M2",
                   help="the models after the main one, the same as the rest of --models, or 'none'; each runs "
                   f"on every runtime like the main one (default: {','.join(d.compare_models)}, the reference "
                   "study's weights)")
    p.add_argument("--lpips-backbone", default=d.lpips_backbone, metavar="PATH",
                   help="AlexNet weights for LPIPS (default: $DERMSR_LPIPS_BACKBONE, else the copy "
                        "shipped with dermsr; never downloaded)")
    p.add_argument("--threads", type=int, default=d.threads, help="runtime threads (default: the runtime's own)")
    p.add_argument("--no-speed", action="store_true",
                   help="skip the fresh-process timing of each model on each runtime (the dermsr bench method)")
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


def _names(text: str, flag: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    if not names:
        raise InputError(f"{flag} expects comma-separated model names or files, got {text!r}")
    return names


def _model_options(args: argparse.Namespace) -> dict[str, object]:
    """``models=`` from --models, else ``model=``/``compare_models=`` from the older flags (the same list)."""
    if args.models is not None:
        given = [f for f, v in (("--model", args.model), ("--compare-models", args.compare_models)) if v is not None]
        if given:
            raise InputError(f"--models lists every model; give it without {' and '.join(given)} (they are "
                             f"another way to write the same list), got --models {args.models} and "
                             + " ".join(f"{f} {getattr(args, f[2:].replace('-', '_'))}" for f in given))
        return {"models": _names(args.models, "--models")}
    options: dict[str, object] = {"model": args.model}
    if args.compare_models is not None:
        options["compare_models"] = () if args.compare_models.strip() == "none" else _names(
            args.compare_models, "--compare-models")
    return options


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("metrics", "dermsr study")
    from ..evaluate.report.records import ModelComparison
    from ..evaluate.study import StudyConfig, run_study

    backends = None
    if args.backends is not None:
        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        if not backends:
            raise InputError("--backends expects comma-separated runtime names, got an empty list")
    config = StudyConfig(
        images=_images(args.images), backends=backends, runs=args.runs, repeats=args.repeats,
        seed=args.seed, size=args.size, lpips_backbone=args.lpips_backbone, threads=args.threads,
        speed=not args.no_speed, resume=not args.no_resume, figures=not args.no_figures, dpi=args.dpi,
        progress=not args.quiet, **_model_options(args),
    )
    results = run_study(args.out, config)
    cfg = results["config"]
    print(f"studied {len(cfg['images'])} image(s) on {', '.join(cfg['backends_run'])} with "
          f"{', '.join(m['label'] for m in cfg['models'])} in {results['wall_time_s']:.1f} s -> "
          f"{args.out / 'report.md'}", file=sys.stderr)
    for m in ModelComparison.from_results(results).models:
        for r in [*m.not_applicable, *m.failed]:
            print(f"  {m.label} on {r.backend}: {'not applicable' if r in m.not_applicable else 'failed'}: "
                  f"{r.reason}", file=sys.stderr)
    for s in cfg["backends_skipped"]:
        print(f"  skipped {s['backend']}: {s['reason']}", file=sys.stderr)
    if not cfg["lpips"]["computed"]:
        print(f"  LPIPS skipped: {cfg['lpips']['reason']}", file=sys.stderr)
    return 0
