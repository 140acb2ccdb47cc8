"""What a study runs: its configuration, the command line that repeats it, and one runtime's record on one image."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...validation import check_int
from ..metric_info import FIDELITY_METRICS, METRIC_INFO

#: Full-reference metrics of the study, in the thesis's table order (Tables 2-5).
METRICS = FIDELITY_METRICS

#: Whether a larger value means closer to the reference.
HIGHER_IS_BETTER = {m: METRIC_INFO[m].higher_is_better for m in METRICS}

#: Name used for the bicubic baseline wherever a runtime name could appear.
BICUBIC = "bicubic"

#: Bump when the cache's content changes meaning.
_CACHE_VERSION = 1

#: Models compared with the main one by default: the reference study's released weights.
_COMPARE_MODELS = ("realesr-animevideov3-x4",)

@dataclass(frozen=True)
class StudyConfig:
    """What to study. Defaults reproduce the thesis on the bundled images.

    ``backends=None`` means every registered backend (unavailable ones are skipped with the
    reason). ``repeats`` (default: ``runs``, at least 2) is how many raw runs the consistency
    check compares; 0 skips that check (affordable studies of slow models). ``size`` is the
    side of the low-resolution input (the thesis's 224).

    ``models`` are the models compared side by side (names, weights files or
    :class:`~dermsr.models.Model`; anything :func:`dermsr.models.load_model` accepts): each
    runs on every runtime and is scored against the ground truth and bicubic. Without it the
    models are ``model`` (default: the library's default model) followed by ``compare_models``
    (default: the reference study's released weights, ``realesr-animevideov3-x4``): the two
    older fields are another way to write the same list, so give one or the other. A model
    listed twice (the same weights) is studied once. The first model is the study's main one:
    its verdict is ``results["verdict"]``.

    ``speed`` times each model on each runtime as ``dermsr bench`` does (a fresh process per
    cell, one warm-up, the median of ``runs`` runs). ``lpips_backbone``: AlexNet weights for
    LPIPS (else ``$DERMSR_LPIPS_BACKBONE``, torchvision's cache or download; if none works
    LPIPS is skipped and the report says so).

    >>> StudyConfig(runs=3).n_repeats, StudyConfig(runs=1).n_repeats, StudyConfig(repeats=7).n_repeats
    (3, 2, 7)
    >>> StudyConfig().model_specs, StudyConfig(models=("a", "b")).model_specs
    ((None, 'realesr-animevideov3-x4'), ('a', 'b'))
    """

    images: tuple[Path, ...] = ()
    backends: tuple[str, ...] | None = None
    runs: int = 5
    repeats: int | None = None
    seed: int = 0
    size: int = 224
    model: Any = None
    lpips_backbone: str | None = None
    threads: int | None = None
    reference: str = "torch"
    compare_models: tuple[str, ...] = _COMPARE_MODELS
    models: tuple[Any, ...] | None = None
    speed: bool = True
    resume: bool = True
    figures: bool = True
    dpi: int = 80
    progress: bool = True

    def __post_init__(self) -> None:
        check_int(self.runs, "runs", lo=1)
        check_int(self.repeats, "repeats", lo=0, none_ok=True)
        if self.repeats == 1:
            raise InputError("repeats must be 0 (skip the repeated-run check) or at least 2 (runs compared "
                             "with each other), got 1")
        check_int(self.size, "size (the low-resolution side)", lo=16)
        if self.lpips_backbone is not None and not Path(self.lpips_backbone).expanduser().is_file():
            raise InputError(f"LPIPS backbone {self.lpips_backbone} does not exist; expected an AlexNet "
                             "weights file (.pth), e.g. torchvision's alexnet-owt-7be5be79.pth")
        check_int(self.seed, "seed")
        check_int(self.dpi, "dpi", lo=20, hi=600)
        check_int(self.threads, "threads", lo=1, none_ok=True)
        if isinstance(self.compare_models, str) or not all(isinstance(m, str) for m in self.compare_models):
            raise InputError(f"compare_models must be a tuple of model names or files, got {self.compare_models!r}")
        if self.models is not None:
            self._check_models()

    def _check_models(self) -> None:
        from ...models import Model

        models = self.models
        if not isinstance(models, (tuple, list)) or not models:
            raise InputError(f"models must be a non-empty tuple of model names, weights files or Models, "
                             f"got {models!r}")
        bad = [m for m in models if not isinstance(m, (str, os.PathLike, Model))]
        if bad:
            raise InputError(f"models must be model names, weights files or Models, got {bad[0]!r} "
                             f"({type(bad[0]).__name__})")
        if self.model is not None or tuple(self.compare_models) != _COMPARE_MODELS:
            raise InputError(
                "give the models either as models=(...) or as model= and compare_models=, not both; got "
                f"models={tuple(models)!r}, model={self.model!r}, compare_models={tuple(self.compare_models)!r}")
        object.__setattr__(self, "models", tuple(models))

    @property
    def model_specs(self) -> tuple[Any, ...]:
        """Every model to study, the main one first: ``models``, else ``(model, *compare_models)``."""
        return self.models if self.models is not None else (self.model, *self.compare_models)

    @property
    def n_repeats(self) -> int:
        """Raw runs of the consistency check (0: skipped)."""
        return max(2, self.runs) if self.repeats is None else int(self.repeats)

@dataclass
class BackendRun:
    """One model on one runtime on one image: its output, timings and consistency numbers."""

    backend: str
    image: str
    output: np.ndarray | None  # float32 (1, 3, H, W) of the first timed Enhancer.run
    init_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    consistency: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the runtime could not be loaded
    errors: list[str] = field(default_factory=list)  # runs that raised (corrupted output ...)
    cached: bool = False
    model: str = ""  # the model's label in the study
    unsupported: str | None = None  # the runtime cannot run this model (UnsupportedModelError's message)

def study_command(cfg: StudyConfig, out: str | os.PathLike[str]) -> str:
    """The ``dermsr study`` command line that repeats ``cfg``.

    >>> study_command(StudyConfig(backends=("torch",), runs=2), "out")
    'dermsr study --out out --backends torch --runs 2 --seed 0'
    >>> study_command(StudyConfig(models=("dermsr-blind-x4", "m.npz"), repeats=0, speed=False), "out")
    'dermsr study --out out --runs 5 --repeats 0 --seed 0 --models dermsr-blind-x4,m.npz --no-speed'
    """
    import shlex

    args = ["dermsr", "study", *(str(p) for p in cfg.images), "--out", str(out)]
    if cfg.backends is not None:
        args += ["--backends", ",".join(cfg.backends)]
    args += ["--runs", str(cfg.runs)]
    if cfg.repeats is not None:
        args += ["--repeats", str(cfg.repeats)]
    args += ["--seed", str(cfg.seed)]
    if cfg.size != StudyConfig.size:
        args += ["--size", str(cfg.size)]
    def spec(m: Any) -> str | None:
        return None if m is None else str(getattr(m, "name", m))

    if cfg.models is not None:
        args += ["--models", ",".join(str(spec(m)) for m in cfg.models)]
    for flag, value in (("--model", spec(cfg.model)), ("--lpips-backbone", cfg.lpips_backbone),
                        ("--threads", cfg.threads)):
        if value is not None:
            args += [flag, str(value)]
    if cfg.dpi != StudyConfig.dpi:
        args += ["--dpi", str(cfg.dpi)]
    if tuple(cfg.compare_models) != StudyConfig.compare_models:
        args += ["--compare-models", ",".join(cfg.compare_models) or "none"]
    if not cfg.speed:
        args.append("--no-speed")
    if not cfg.figures:
        args.append("--no-figures")
    return " ".join(shlex.quote(a) for a in args)

def _dermsr_version() -> str:
    from ..._version import __version__

    return __version__
