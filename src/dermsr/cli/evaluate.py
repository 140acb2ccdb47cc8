"""``dermsr evaluate``: do models help on your images? Every model × degradation against
bicubic, Lanczos and the ground truth (:mod:`dermsr.evaluate.scorecard`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..evaluate.scorecard import PROTOCOLS

    p = sub.add_parser(
        "evaluate",
        help="score models against bicubic/Lanczos and the ground truth on your images",
        description="Degrade HR images by each protocol, restore them with each model and the "
        "interpolation baselines, and report PSNR, SSIM, LPIPS, per-image win rates against "
        "bicubic and the colour shift, per image set and protocol. See docs/evaluation.md.",
    )
    a = p.add_argument
    a("--data", action="append", default=[], metavar="[GROUP=]DIR",
      help="score the held-out split of this training folder (as dermsr train split it); repeat; "
      "GROUP= pools folders under one name (default: the folder's name)")
    a("--unseen", action="append", default=[], metavar="[GROUP=]DIR",
      help="score every image of this folder (one no model was trained on); repeat")
    a("--model", action="append", required=True, help="model name or weights file; repeat for several")
    a("--protocol", action="append", choices=PROTOCOLS,
      help="degradation protocol; repeat (default: bicubic-x4, thesis, phone)")
    a("--no-lanczos", action="store_true", help="bicubic is the only baseline")
    a("--val-fraction", type=float, default=0.1, help="held-out share used by the training run (default 0.1)")
    a("--seed", type=int, default=0, help="the training run's split seed; also seeds the degradations (default 0)")
    a("--hr-short-side", type=int, default=896, help="HR short side of the non-thesis protocols (default 896)")
    a("--lpips-backbone", default=None,
      help="AlexNet backbone file (default: $DERMSR_LPIPS_BACKBONE, else the copy shipped with dermsr)")
    a("--backend", default="auto", help="runtime of the models (default auto: the fastest installed)")
    a("--threads", type=int, default=None)
    a("--crops", type=Path, default=None, metavar="DIR", help="write one crop figure per set and protocol here")
    a("--json", type=Path, default=None, metavar="FILE", help="write every number here")
    a("--markdown", type=Path, default=None, metavar="FILE", help="write the tables here too")
    a("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from .._extras import require
    from ..errors import InputError

    require("metrics", "dermsr evaluate")
    from ..evaluate.scorecard import format_markdown, parse_image_set, scorecard
    from ..io import atomic_write_bytes

    sets = [parse_image_set(s, True) for s in args.data] + [parse_image_set(s, False) for s in args.unseen]
    if not sets:
        raise InputError("dermsr evaluate needs --data DIR (held-out split) or --unseen DIR (every image)")
    result = scorecard(sets, args.model, protocols=args.protocol or ("bicubic-x4", "thesis", "phone"),
                       baselines=("bicubic",) if args.no_lanczos else ("bicubic", "lanczos"),
                       val_fraction=args.val_fraction, seed=args.seed, hr_short_side=args.hr_short_side,
                       lpips_backbone=args.lpips_backbone, backend=args.backend, threads=args.threads,
                       crops=args.crops, progress=not args.quiet)
    text = format_markdown(result)
    if args.json:
        atomic_write_bytes(args.json, json.dumps(result, indent=2).encode())
    if args.markdown:
        atomic_write_bytes(args.markdown, (text + "\n").encode())
    sys.stdout.write(text + "\n")
    return 0
