"""Composable, seeded image degradations for super-resolution studies.

* :mod:`.ops` — pure functions on uint8 / uint16 / float images (OpenCV underneath).
* :mod:`.steps` — one small frozen config per operation; ``step(image, rng, hr_hw)``.
* :class:`Degrader` — steps in order with one seeded ``numpy.random.Generator``;
  ``to_dict()``/``from_dict()`` record exactly what was done.
* :data:`PRESETS` — ``"thesis"``, ``"bicubic-x4"``, ``"phone"``, ``"realistic"``; see docs/degradation.md.

>>> import numpy as np
>>> from dermsr.degrade import Degrader
>>> res = Degrader.preset("bicubic-x4").apply(np.zeros((10, 13, 3), np.uint8))
>>> res.hr.shape, res.lr.shape
((8, 12, 3), (2, 3, 3))
"""

from __future__ import annotations

from . import ops, steps
from .pipeline import Degrader, DegradeResult
from .presets import PRESETS
from .steps import STEP_TYPES, step_from_dict

__all__ = ["PRESETS", "STEP_TYPES", "DegradeResult", "Degrader", "ops", "step_from_dict", "steps"]
