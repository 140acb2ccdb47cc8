"""The training loop: Adam, cosine/step schedule, EMA, atomic checkpoints, exact resume.

(A little over 400 lines on purpose: exact resume needs the loop, the checkpoint format and
the RNG state handling side by side.)

A checkpoint is an ordinary Real-ESRGAN-style file — ``params_ema`` (the EMA weights, which
:func:`dermsr.models.load_model` prefers, as Real-ESRGAN's releases do) and ``params`` — plus
a ``train_state`` entry (step, optimiser, RNG states, config) that only resuming reads. Every
value is a tensor or plain Python data, so ``torch.load(weights_only=True)`` opens it.

Resuming restores the weights, the EMA, Adam's moments, the numpy Generator that draws the
batches, torch's and Python's RNGs, and the step; the learning rate is a pure function of the
step. On the CPU with the same thread count, ``N`` steps straight and ``k`` steps + resume
``N - k`` give bitwise-equal weights (tested).
"""

from __future__ import annotations

import functools
import io
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from .config import TrainConfig
from .data import (
    Degradation,
    PairSampler,
    gather_images,
    load_hr,
    resolve_degradation,
)

__all__ = [
    "TrainResult",
    "build_network",
    "learning_rate",
    "load_checkpoint",
    "save_weights",
    "train",
    "validation_pairs",
]

#: Config fields that may change between a run and its resumption without breaking it.
RESUMABLE_CHANGES = frozenset(
    {"out", "steps", "val_every", "val_images", "save_every", "keep_checkpoints", "device", "threads"}
)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Learning rate at 1-based ``step``: linear warm-up, then cosine / step / constant.

    The cosine runs from ``lr`` at the first step after warm-up to ``lr_min`` at the last step.

    >>> c = TrainConfig(data="d", out="o", steps=101, lr=1e-3, lr_min=0.0)
    >>> learning_rate(1, c), round(learning_rate(51, c), 6), learning_rate(101, c)
    (0.001, 0.0005, 0.0)
    """
    if config.warmup and step <= config.warmup:
        return config.lr * step / config.warmup
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return max(config.lr_min, config.lr * config.gamma ** ((step - 1) // config.step_size))
    span = max(1, config.steps - config.warmup - 1)
    t = min(1.0, (step - 1 - config.warmup) / span)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1.0 + math.cos(math.pi * t))


def build_network(config: TrainConfig):
    """The torch network to train: ``config.init`` loaded (any SRVGGNetCompact), or a fresh one."""
    import torch

    from ..models import ModelConfig, load_model
    from ..models.arch import SRVGGNetCompact

    if config.init:
        model = load_model(config.init)
        if not isinstance(model.config, ModelConfig):
            raise InputError(
                f"dermsr train fine-tunes SRVGGNetCompact networks; --init {config.init!r} is a "
                f"{model.architecture}"
            )
        if model.config.resized_output:
            raise InputError(
                f"--init {config.init!r} resizes its output (×{model.scale} from a ×"
                f"{model.config.upscale} network); train from the ×{model.config.upscale} model"
            )
        if model.scale != config.scale:
            raise InputError(f"--init model has scale {model.scale}, the config asks for {config.scale}")
        return model.to_torch().train()
    torch.manual_seed(config.seed)
    return SRVGGNetCompact(num_feat=config.num_feat, num_conv=config.num_conv, upscale=config.scale).train()


def _state_dict(net) -> dict[str, Any]:
    return {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}


def _save(path: Path, obj: dict[str, Any]) -> None:
    import torch

    from ..io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_weights(path: str | Path, net, ema) -> Path:
    """Write a weights-only Real-ESRGAN-style file ``{'params_ema': ..., 'params': ...}`` atomically."""
    p = Path(path)
    _save(p, {"params_ema": _state_dict(ema), "params": _state_dict(net)})
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Open a training checkpoint (``weights_only=True``) and check it can be resumed."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: not a readable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "train_state" not in ckpt:
        raise CheckpointError(
            f"{p}: holds weights but no training state; use it with --init to fine-tune, "
            "or pass a checkpoint written by dermsr train (checkpoints/ckpt_*.pth) to --resume"
        )
    return ckpt


def _rng_state(sampler: PairSampler) -> dict[str, Any]:
    import torch

    return {"numpy": sampler.get_state(), "torch": torch.get_rng_state(), "python": random.getstate()}


def _set_rng_state(sampler: PairSampler, state: dict[str, Any]) -> None:
    import torch

    sampler.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def validation_pairs(
    images: Sequence[tuple[str, np.ndarray]],
    degradations: Sequence[Degradation],
    *,
    scale: int,
    crop: int,
    seed: int = 0,
    originals: Sequence[Callable[[], np.ndarray]] | None = None,
    groups: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Fixed (LR, HR) validation crops: one per (held-out image, degradation).

    With ``groups`` (image name → folder name) each pair is tagged ``<degradation>@<group>``,
    so the metrics come out per folder (per modality). A whole-image degradation is skipped
    on an image too small for it (its HR would be enlarged), as in training.

    Whole-image degradations run on the whole image; patch degradations on its central
    ``crop × scale`` HR square (whole-image ones on ``originals[k]()`` when given, as in
    :class:`~dermsr.train.data.PairSampler`). The LR crop is the central ``crop`` square (or the whole LR
    if smaller); seeds are fixed, so every validation sees the same pairs.
    """
    out = []
    for k, (name, img) in enumerate(images):
        for d, deg in enumerate(degradations):
            if deg.on == "image":
                src = originals[k]() if originals is not None else img
                lr, hr = deg.pair(src, seed + d, scale)
                if min(hr.shape[:2]) > min(src.shape[:2]):
                    continue
            else:
                hp = crop * scale
                h, w = img.shape[:2]
                y, x = max(0, (h - hp) // 2), max(0, (w - hp) // 2)
                lr, hr = deg.pair(np.ascontiguousarray(img[y : y + hp, x : x + hp]), seed + d, scale)
            c = min(crop, *lr.shape[:2])
            y, x = (lr.shape[0] - c) // 2, (lr.shape[1] - c) // 2
            lr_c = np.ascontiguousarray(lr[y : y + c, x : x + c])
            hr_c = np.ascontiguousarray(hr[y * scale : (y + c) * scale, x * scale : (x + c) * scale])
            tag = f"{deg.name}@{groups[name]}" if groups else deg.name
            out.append({"image": name, "degradation": tag, "lr": lr_c, "hr": hr_c})
    return out


def _validate(net, pairs: list[dict[str, Any]], scale: int, device, lpips_backbone: str | None = None) -> dict[str, float]:
    import torch

    from ..evaluate.scorecard import metric_functions, upscale

    fns = metric_functions(lpips_backbone)
    sums: dict[str, float] = {}
    net.eval()
    with torch.no_grad():
        for item in pairs:
            x = torch.from_numpy(item["lr"].transpose(2, 0, 1)[None].copy()).to(device)
            sr = net(x).clamp(0, 1)[0].cpu().numpy().transpose(1, 2, 0)
            bic = upscale(item["lr"], scale, "bicubic")
            tag = item["degradation"]
            for mname, fn in fns.items():
                for who, img in (("model", sr), ("bicubic", bic)):
                    key = f"{tag}/{who}/{mname}"
                    sums[key] = sums.get(key, 0.0) + fn(img, item["hr"])
    counts: dict[str, int] = {}
    for item in pairs:
        counts[item["degradation"]] = counts.get(item["degradation"], 0) + 1
    return {k: v / counts[k.split("/")[0]] for k, v in sums.items()}


def _first_per_group(names: list[str], groups: dict[str, str] | None, n: int) -> list[str]:
    """The first ``n`` names of each group (of all names without groups), in order."""
    if not groups:
        return names[:n]
    taken: dict[str, int] = {}
    out = []
    for name in names:
        g = groups[name]
        if taken.get(g, 0) < n:
            taken[g] = taken.get(g, 0) + 1
            out.append(name)
    return out


@dataclass
class TrainResult:
    """Where the run wrote its files, the last step, and what it logged."""

    out: Path
    weights: Path
    checkpoint: Path | None
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)


def _check_resume_config(saved: dict[str, Any], config: TrainConfig) -> None:
    now = config.to_dict()
    diff = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if diff:
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in diff)
        raise InputError(f"cannot resume: the run's settings differ from the checkpoint's ({shown})")


def _setup_torch(config: TrainConfig):
    import torch

    from ..enhance.backends.torch import parse_device

    device = parse_device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
    return device


def train(
    config: TrainConfig,
    *,
    degradations: Sequence[Any] | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train (or fine-tune) an SRVGGNetCompact as ``config`` says; returns where it wrote.

    ``degradations`` overrides ``config.preset`` with objects :func:`resolve_degradation`
    accepts (callables, Degraders, ``Degradation``). Files written under ``config.out``:
    ``config.json``, ``split.json`` (the train/val image names), ``log.jsonl``,
    ``checkpoints/ckpt_<step>.pth`` (resumable, loadable by ``load_model``) and ``model.pth``
    (weights only: ``params_ema`` + ``params``).
    """
    import torch
    from tqdm import tqdm

    say = log or (lambda msg: print(msg, file=sys.stderr))
    device = _setup_torch(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"

    ckpt = load_checkpoint(resume) if resume else None
    if ckpt is not None:
        _check_resume_config(ckpt["train_state"]["config"], config)

    # data: split by image, decode the training images once
    rel, split, source = gather_images(config.data, config.val_fraction, config.seed)

    def short_side(name: str) -> int:
        own = source[name].short_side
        return config.hr_short_side if own is None else own

    from ..io import atomic_write_bytes

    atomic_write_bytes(out / "config.json", json.dumps(config.to_dict(), indent=2).encode())
    atomic_write_bytes(out / "split.json", json.dumps({"train": split.train, "val": split.val}, indent=2).encode())
    degs = [resolve_degradation(d) for d in (degradations if degradations is not None else config.presets)]
    train_imgs = [load_hr(rel[n], short_side(n)) for n in
                  tqdm(split.train, desc="decoding", unit="img", disable=not progress, file=sys.stderr)]
    whole = any(d.on == "image" for d in degs)

    def originals(names: list[str]) -> list[Callable[[], np.ndarray]] | None:
        # whole-image degradations see the full-resolution decode, as evaluation does
        return [functools.partial(load_hr, rel[n], 0) for n in names] if whole else None

    sampler = PairSampler(train_imgs, degs, patch_size=config.patch_size, scale=config.scale,
                          seed=config.seed, originals=originals(split.train))
    val_pairs: list[dict[str, Any]] = []
    if config.val_every and split.val:
        groups = {n: source[n].name for n in split.val} if len(set(source[n].name for n in rel)) > 1 else None
        names = _first_per_group(split.val, groups, config.val_images)
        val_pairs = validation_pairs([(n, load_hr(rel[n], short_side(n))) for n in names], degs,
                                     scale=config.scale, crop=config.val_patch, seed=config.seed,
                                     originals=originals(names), groups=groups)

    # model, EMA, optimiser
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    net = build_network(config).to(device)
    if net.upscale != config.scale:
        raise InputError(f"network scale {net.upscale} differs from config scale {config.scale}")
    import copy

    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(0.9, 0.99))
    from .losses import CompositeLoss

    criterion = CompositeLoss(config.losses, lpips_backbone=config.lpips_backbone, device=device)

    step = 0
    if ckpt is not None:
        net.load_state_dict(ckpt["params"])
        ema.load_state_dict(ckpt["params_ema"])
        opt.load_state_dict(ckpt["train_state"]["optimizer"])
        _set_rng_state(sampler, ckpt["train_state"]["rng"])
        step = int(ckpt["train_state"]["step"])
        say(f"resumed from {resume} at step {step}")
    if step >= config.steps:
        say(f"nothing to do: the checkpoint is at step {step} >= steps {config.steps}")

    history: list[dict[str, Any]] = []
    log_file = (out / "log.jsonl").open("a", encoding="utf-8")
    last_ckpt: Path | None = None

    def record(entry: dict[str, Any]) -> None:
        history.append(entry)
        log_file.write(json.dumps(entry) + "\n")
        log_file.flush()

    def checkpoint(at: int) -> Path:
        path = ckpt_dir / f"ckpt_{at:07d}.pth"
        _save(path, {
            "params_ema": _state_dict(ema),
            "params": _state_dict(net),
            "train_state": {
                "step": at,
                "optimizer": opt.state_dict(),
                "rng": _rng_state(sampler),
                "config": config.to_dict(),
            },
        })
        old = sorted(ckpt_dir.glob("ckpt_*.pth"))[: -config.keep_checkpoints]
        for f in old:
            f.unlink(missing_ok=True)
        return path

    decay = config.ema_decay
    bar = tqdm(total=config.steps, initial=step, unit="step", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        while step < config.steps:
            step += 1
            lr_now = learning_rate(step, config)
            for g in opt.param_groups:
                g["lr"] = lr_now
            lr_b, hr_b = sampler.batch(config.batch_size)
            x = torch.from_numpy(lr_b).to(device)
            y = torch.from_numpy(hr_b).to(device)
            net.train()
            opt.zero_grad(set_to_none=True)
            total, parts = criterion(net(x), y)
            total.backward()
            opt.step()
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                    pe.mul_(decay).add_(pn.detach(), alpha=1.0 - decay)
            loss_value = float(total.detach())
            if not math.isfinite(loss_value):
                raise InputError(f"loss became {loss_value} at step {step}; lower --lr")
            record({"step": step, "loss": loss_value, **parts, "lr": lr_now,
                    "elapsed_s": round(time.perf_counter() - t0, 3)})
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr_now:.2e}")
            bar.update(1)
            if step % config.save_every == 0 or step == config.steps:
                last_ckpt = checkpoint(step)
            if val_pairs and (step % config.val_every == 0 or step == config.steps):
                metrics = _validate(ema, val_pairs, config.scale, device, config.lpips_backbone)
                record({"step": step, "val": metrics})
                shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                bar.write(f"step {step} validation (EMA, {len(names)} images): {shown}",
                          file=sys.stderr)
    finally:
        bar.close()
        log_file.close()
    weights = save_weights(out / "model.pth", net, ema)
    return TrainResult(out=out, weights=weights, checkpoint=last_ckpt, step=step, history=history)
