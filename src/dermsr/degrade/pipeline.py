"""The :class:`Degrader` pipeline: steps in order, one seeded generator, an exact record."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import is_int
from . import ops
from .steps import Step, step_from_dict

__all__ = ["FORMAT", "DegradeResult", "Degrader"]

#: Value of the ``"format"`` key in :meth:`Degrader.to_dict`.
FORMAT = "dermsr.Degrader/1"

_WORK_DTYPES = (None, "float32", "float64")


@dataclass(frozen=True)
class DegradeResult:
    """What :meth:`Degrader.apply` returns.

    ``lr``: the degraded image. ``hr``: the aligned high-resolution reference — the input
    after the pipeline's leading crop steps, in the input's layout and dtype. ``record``:
    a JSON-ready dict saying exactly what was done (pipeline, seed, every random draw).
    """

    lr: np.ndarray
    hr: np.ndarray
    record: dict[str, Any]


def _describe(a: np.ndarray) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


class Degrader:
    """A sequence of degradation steps applied with one seeded ``numpy.random.Generator``.

    ``Degrader(steps, work_dtype=None, label=None)``

    * ``steps``: :mod:`dermsr.degrade.steps` objects. Crop steps (which cut out the HR
      reference) must come first; :class:`~dermsr.degrade.steps.ToNCHW` may only come last.
    * ``work_dtype``: ``None`` runs every step on the input's own dtype (as a study calling
      OpenCV on uint8 images does); ``"float32"``/``"float64"`` converts once after the crops,
      runs the steps in floating point and converts back to the input's dtype at the end
      (rounded once), as Real-ESRGAN's float-tensor pipeline does.
    * ``label``: a name for records, e.g. the preset's.

    ``degrader(image, seed)`` returns the degraded image; :meth:`apply` also returns the HR
    reference and a record. Same seed, same bytes.

    >>> import numpy as np
    >>> from dermsr.degrade import Degrader
    >>> d = Degrader.preset("thesis")
    >>> d(np.zeros((300, 400, 3), np.uint8)).shape
    (1, 3, 224, 224)
    >>> Degrader.from_dict(d.to_dict()) == d
    True
    """

    def __init__(self, steps: Iterable[Step], *, work_dtype: str | None = None,
                 label: str | None = None) -> None:
        steps = tuple(steps)
        for i, s in enumerate(steps):
            if not isinstance(s, Step):
                raise InputError(f"step {i} is {s!r}; expected a dermsr.degrade.steps object")
        roles = [s.role for s in steps]
        first_other = next((i for i, r in enumerate(roles) if r != "crop"), len(roles))
        if "crop" in roles[first_other:]:
            raise InputError(
                "crop steps define the HR reference and must come before every other step; "
                f"got order {[type(s).__name__ for s in steps]}"
            )
        if "output" in roles[:-1]:
            raise InputError("ToNCHW changes the layout and must be the last step")
        if work_dtype not in _WORK_DTYPES:
            raise InputError(f"work_dtype must be one of {list(_WORK_DTYPES)}, got {work_dtype!r}")
        if label is not None and not isinstance(label, str):
            raise InputError(f"label must be a string or None, got {label!r}")
        self._steps = steps
        self._work_dtype = work_dtype
        self._label = label

    # ----------------------------------------------------------------- properties

    @property
    def steps(self) -> tuple[Step, ...]:
        return self._steps

    @property
    def work_dtype(self) -> str | None:
        return self._work_dtype

    @property
    def label(self) -> str | None:
        return self._label

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Degrader):
            return NotImplemented
        return (self._steps, self._work_dtype, self._label) == (
            other._steps, other._work_dtype, other._label)

    def __hash__(self) -> int:
        return hash((self._steps, self._work_dtype, self._label))

    def __repr__(self) -> str:
        head = []
        if self._label is not None:
            head.append(f"label={self._label!r}")
        if self._work_dtype is not None:
            head.append(f"work_dtype={self._work_dtype!r}")
        inner = "".join(f"\n    {s!r}," for s in self._steps)
        steps = f"[{inner}\n]" if inner else "[]"
        return f"Degrader({', '.join([*head, f'steps={steps}'])})"

    # ----------------------------------------------------------------- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict from which :meth:`from_dict` rebuilds an equal Degrader."""
        return {
            "format": FORMAT,
            "label": self._label,
            "work_dtype": self._work_dtype,
            "steps": [s.to_dict() for s in self._steps],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Degrader:
        """Rebuild a Degrader from :meth:`to_dict` output (also after a JSON round trip)."""
        if not isinstance(data, dict):
            raise InputError(f"expected a dict from Degrader.to_dict(), got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise InputError(f"expected format {FORMAT!r}, got {data.get('format')!r}")
        extra = sorted(set(data) - {"format", "label", "work_dtype", "steps"})
        if extra:
            raise InputError(f"unexpected key(s) {extra} in a Degrader dict")
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise InputError(f"'steps' must be a list, got {type(steps).__name__}")
        return cls([step_from_dict(s) for s in steps], work_dtype=data.get("work_dtype"),
                   label=data.get("label"))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Degrader:
        """A named pipeline (see :data:`dermsr.degrade.PRESETS`), parameters overridable.

        >>> Degrader.preset("thesis", blur_sigma=0.8).steps[1]
        GaussianBlur(ksize=3, sigma=0.8)
        """
        from .presets import build

        return build(name, **overrides)

    # ----------------------------------------------------------------- running

    def __call__(self, image: Any, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """The degraded image (see :meth:`apply` for the HR reference and the record)."""
        return self.apply(image, seed=seed).lr

    def apply(self, image: Any, seed: int | np.random.Generator | None = None) -> DegradeResult:
        """Degrade ``image`` (array or image path) with every draw from one Generator.

        ``seed``: an int (recorded), a ``numpy.random.Generator`` (used as is; recorded as
        None) or None (a fresh seed is drawn from the OS and recorded, so the record still
        reproduces the result).
        """
        if isinstance(image, (str, os.PathLike)):
            from ..io import read_image

            image = read_image(image)
        ops.check_image(image)
        rng, recorded_seed = _make_rng(seed)
        x = image
        infos: list[dict[str, Any]] = []
        steps = self._steps
        n_crop = next((i for i, s in enumerate(steps) if s.role != "crop"), len(steps))
        for s in steps[:n_crop]:
            x, info = s(x, rng=rng, hr_hw=x.shape[:2])
            infos.append({"type": type(s).__name__, **info, "shape": list(x.shape)})
        hr = x if n_crop else x.copy()
        hr_hw = tuple(hr.shape[:2])
        if self._work_dtype is not None:
            x = ops.to_float(x).astype(self._work_dtype, copy=False)
        for s in steps[n_crop:]:
            x, info = s(x, rng=rng, hr_hw=hr_hw)
            infos.append({"type": type(s).__name__, **info, "shape": list(x.shape)})
        if self._work_dtype is not None and not (steps and steps[-1].role == "output"):
            x = ops.from_float(x, image.dtype)
        if x is image:  # a pipeline without steps still returns a new array
            x = image.copy()
        record = {
            "degrader": self.to_dict(),
            "seed": recorded_seed,
            "input": _describe(image),
            "hr": _describe(hr),
            "lr": _describe(x),
            "steps": infos,
        }
        return DegradeResult(lr=x, hr=hr, record=record)


def _make_rng(seed: Any) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if not is_int(seed) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(int(seed)), int(seed)
