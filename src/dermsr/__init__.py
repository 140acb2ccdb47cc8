"""dermsr: Real-ESRGAN compact ×4 super-resolution for dermatology images on four runtimes.

Importing dermsr imports no deep-learning runtime; the public names below load on first use.

>>> import dermsr, sys
>>> "torch" in sys.modules or "onnxruntime" in sys.modules  # doctest: +SKIP
False
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from . import backends, errors
    from .degrade import Degrader
    from .enhance import Enhancer
    from .evaluate import Evaluator
    from .io import read_image, write_image
    from .models import Model, load_model

_LAZY = {
    "Enhancer": ("dermsr.enhance", "Enhancer"),
    "Degrader": ("dermsr.degrade", "Degrader"),
    "Evaluator": ("dermsr.evaluate", "Evaluator"),
    "Model": ("dermsr.models", "Model"),
    "load_model": ("dermsr.models", "load_model"),
    "read_image": ("dermsr.io", "read_image"),
    "write_image": ("dermsr.io", "write_image"),
}
_SUBMODULES = {"backends", "degrade", "enhance", "errors", "evaluate", "export", "io", "models"}

__all__ = ["Degrader", "Enhancer", "Evaluator", "Model", "__version__", "backends", "errors",
           "load_model", "read_image", "write_image"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"dermsr.{name}")
    raise AttributeError(f"module 'dermsr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
