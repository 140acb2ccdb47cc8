"""``dermsr train --data DIR --steps N --out DIR``: fine-tune SRVGGNetCompact on HR images.

Scoring trained weights is ``dermsr evaluate`` (:mod:`dermsr.cli.evaluate`); see
docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError

#: Flags that map one-to-one onto TrainConfig fields (flag name with - for _).
_FIELDS = ("data", "out", "preset", "steps", "init", "num_feat", "num_conv", "scale", "batch_size",
           "patch_size", "lr", "lr_min", "schedule", "step_size", "gamma", "warmup", "ema_decay",
           "loss", "seed", "val_fraction", "val_every", "val_images", "val_patch", "save_every",
           "keep_checkpoints", "hr_short_side", "device", "threads", "lpips_backbone")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="fine-tune or train SRVGGNetCompact on a folder of HR images",
        description="Train on LR/HR patches made on the fly by a degradation preset, with a "
        "held-out validation split by image, EMA weights, atomic checkpoints and exact resume. "
        "Unset options take their defaults, or with --resume the checkpoint's values.",
    )
    a = p.add_argument
    a("--data", action="append", help="folder of HR images (searched recursively); repeat for several "
      "(validation then reports each); DIR@N downsizes that folder's images to a short side of N")
    a("--out", type=Path, help="output folder (checkpoints/, model.pth, log.jsonl, split.json)")
    a("--preset", help="degradation: preset name(s), comma-separated (bicubic-x4, thesis, phone, realistic), "
      "or module:callable (default bicubic-x4)")
    a("--steps", type=int, help="total optimisation steps (default 1000)")
    a("--resume", type=Path, default=None, help="checkpoint to resume exactly (checkpoints/ckpt_*.pth)")
    a("--init", help="model to fine-tune: built-in name or weights file (default: train from scratch)")
    a("--num-feat", type=int, help="features of a from-scratch model (default 64)")
    a("--num-conv", type=int, help="body convolutions of a from-scratch model (default 16)")
    a("--scale", type=int, help="upscale factor (default 4)")
    a("--batch-size", type=int, help="patches per step (default 8)")
    a("--patch-size", type=int, help="LR patch side in pixels (default 32)")
    a("--lr", type=float, help="peak learning rate of Adam (default 1e-4)")
    a("--lr-min", type=float, help="final learning rate of the cosine schedule (default 1e-6)")
    a("--schedule", choices=["cosine", "step", "constant"], help="learning-rate schedule (default cosine)")
    a("--step-size", type=int, help="steps between decays of the step schedule (default 1000)")
    a("--gamma", type=float, help="decay factor of the step schedule (default 0.5)")
    a("--warmup", type=int, help="linear warm-up steps (default 0)")
    a("--ema-decay", type=float, help="EMA decay of the weights saved as params_ema (default 0.999)")
    a("--loss", help="weighted terms, e.g. l1,grad:0.1,lpips:0.05 (default l1)")
    a("--seed", type=int, help="seed of the split, the patches and the initialisation (default 0)")
    a("--val-fraction", type=float, help="share of images held out for validation (default 0.1)")
    a("--val-every", type=int, help="validate every N steps; 0 = never (default 0)")
    a("--val-images", type=int, help="held-out images used by periodic validation (default 8)")
    a("--val-patch", type=int, help="LR side of the central validation crop (default 64)")
    a("--save-every", type=int, help="checkpoint every N steps (default 500)")
    a("--keep-checkpoints", type=int, help="checkpoints kept (default 3)")
    a("--hr-short-side", type=int, help="downsize decoded images to this short side; 0 = full (default 896)")
    a("--device", help="cpu, cuda or cuda:N (default cpu)")
    a("--threads", type=int, help="torch CPU threads (default: torch's default)")
    a("--lpips-backbone", help="AlexNet backbone file for the lpips loss (or $DERMSR_LPIPS_BACKBONE)")
    a("--quiet", action="store_true", help="no progress bar")
    return p


def build_config(args: argparse.Namespace):
    """TrainConfig from the flags; with --resume, unset flags take the checkpoint's values."""
    from ..train import TrainConfig

    given = {f: getattr(args, f) for f in _FIELDS if getattr(args, f, None) is not None}
    if "out" in given:
        given["out"] = str(given["out"])
    if "data" in given:
        given["data"] = given["data"][0] if len(given["data"]) == 1 else tuple(given["data"])
    if args.resume is not None:
        from ..train import load_checkpoint

        base = dict(load_checkpoint(args.resume)["train_state"]["config"])
        base.update(given)
        return TrainConfig.from_dict(base)
    missing = [f"--{f}" for f in ("data", "out") if f not in given]
    if missing:
        raise InputError(f"dermsr train needs {' and '.join(missing)} (or --resume CKPT)")
    return TrainConfig(**given)


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("train", "dermsr train")
    from ..train import train

    config = build_config(args)
    result = train(config, resume=args.resume, progress=not args.quiet)
    print(f"trained {result.step} steps -> {result.weights}"
          + (f" (last checkpoint {result.checkpoint})" if result.checkpoint else ""), file=sys.stderr)
    return 0
