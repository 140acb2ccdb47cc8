"""Training configuration: one frozen dataclass, plus the ``--loss`` spec parser.

No runtime is imported here, so the CLI can build and check a config cheaply.

>>> parse_loss_spec("l1,grad:0.1,lpips:0.05")
{'l1': 1.0, 'grad': 0.1, 'lpips': 0.05}
>>> TrainConfig(data="d", out="o", steps=10).losses
{'l1': 1.0}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..validation import check_int

__all__ = ["LOSS_NAMES", "SCHEDULES", "TrainConfig", "parse_loss_spec"]

#: Loss terms a ``--loss`` spec may name (see :mod:`dermsr.train.losses`).
LOSS_NAMES = ("l1", "grad", "lpips")
#: Learning-rate schedules (see :func:`dermsr.train.loop.learning_rate`).
SCHEDULES = ("cosine", "step", "constant")


def parse_loss_spec(spec: str) -> dict[str, float]:
    """``"l1,grad:0.1,lpips:0.05"`` → ``{"l1": 1.0, "grad": 0.1, "lpips": 0.05}``.

    A term without ``:weight`` has weight 1. Unknown names, repeated names, negative or
    non-numeric weights, and an all-zero spec are refused.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"loss spec must be a non-empty string like 'l1,grad:0.1', got {spec!r}")
    out: dict[str, float] = {}
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        name = name.strip().lower()
        if name not in LOSS_NAMES:
            raise InputError(f"unknown loss term {name!r} in {spec!r}; expected one of {LOSS_NAMES}")
        if name in out:
            raise InputError(f"loss term {name!r} given twice in {spec!r}")
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise InputError(f"loss weight of {name!r} must be a number, got {weight!r}") from None
        if not (w >= 0.0) or w == float("inf"):
            raise InputError(f"loss weight of {name!r} must be finite and >= 0, got {w}")
        out[name] = w
    if not any(out.values()):
        raise InputError(f"loss spec {spec!r} has no term with a positive weight")
    return out


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``patch_size`` is the low-resolution side of a training patch; the high-resolution patch
    is ``patch_size × scale``. ``hr_short_side`` downsizes every decoded image once (area
    interpolation) so its shorter side is at most that many pixels (0: keep full resolution).
    ``preset`` names one degradation or several separated by commas (each sample draws one).
    ``init`` is a model name or weights file to fine-tune; ``None`` trains from scratch with
    ``num_feat``/``num_conv``. ``data`` is one folder or a sequence of folders (each may end
    in ``@N``: its own short side; see :func:`dermsr.train.data.parse_sources`); with
    several, images are named ``<folder name>/<path>`` and validation reports each folder.
    """

    data: str | tuple[str, ...]
    out: str
    preset: str = "bicubic-x4"
    steps: int = 1000
    init: str | None = None
    num_feat: int = 64
    num_conv: int = 16
    scale: int = 4
    batch_size: int = 8
    patch_size: int = 32
    lr: float = 1e-4
    lr_min: float = 1e-6
    schedule: str = "cosine"
    step_size: int = 1000
    gamma: float = 0.5
    warmup: int = 0
    ema_decay: float = 0.999
    loss: str = "l1"
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 0
    val_images: int = 8
    val_patch: int = 64
    save_every: int = 500
    keep_checkpoints: int = 3
    hr_short_side: int = 896
    device: str = "cpu"
    threads: int | None = None
    deterministic: bool = True
    lpips_backbone: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, (list, tuple)):
            folders = tuple(str(d) for d in self.data)
            if not folders:
                raise InputError("data must name at least one folder, got an empty list")
            object.__setattr__(self, "data", folders[0] if len(folders) == 1 else folders)
        elif not isinstance(self.data, str):
            object.__setattr__(self, "data", str(self.data))
        positive = ("steps", "num_feat", "scale", "batch_size", "patch_size", "step_size",
                    "val_images", "val_patch", "save_every", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            check_int(value, name, lo=1)
        for name in ("num_conv", "val_every", "warmup", "hr_short_side", "seed"):
            value = getattr(self, name)
            check_int(value, name, lo=0)
        check_int(self.threads, "threads", lo=1, none_ok=True)
        if not (self.lr > 0 and self.lr_min >= 0 and self.lr_min <= self.lr):
            raise InputError(f"need lr > 0 and 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if not (0.0 < self.gamma <= 1.0):
            raise InputError(f"gamma must be in (0, 1], got {self.gamma}")
        if not (0.0 <= self.ema_decay < 1.0):
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not (0.0 <= self.val_fraction < 1.0):
            raise InputError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not isinstance(self.preset, str) or not [p for p in self.preset.split(",") if p.strip()]:
            raise InputError(f"preset must name at least one degradation, got {self.preset!r}")
        parse_loss_spec(self.loss)

    @property
    def losses(self) -> dict[str, float]:
        return parse_loss_spec(self.loss)

    @property
    def presets(self) -> list[str]:
        return [p.strip() for p in self.preset.split(",") if p.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
