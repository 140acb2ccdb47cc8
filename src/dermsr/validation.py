"""Checks of user-given values, one definition each (no ``assert``: these are user errors).

A count is an integer that is not a bool (``True`` is an ``int`` in Python, and
``Enhancer(threads=True)`` must not mean one thread); NumPy integers are accepted.

>>> check_int(3, "threads", lo=1)
3
>>> check_int(None, "threads", lo=1, none_ok=True) is None
True
>>> check_int(True, "threads", lo=1)
Traceback (most recent call last):
...
dermsr.errors.InputError: threads must be a positive integer, got True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["PRECISIONS", "check_int", "check_precision", "is_int"]

#: Numeric precisions of inference: ``fp32`` (the default, exact reference), ``bf16``,
#: ``fp16`` and ``int8`` (post-training static quantization). Which runtime runs which is
#: stated by each backend (``Backend.precisions``; docs/performance.md).
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy) and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _describe(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an integer in [{lo}, {hi}]"
    if lo == 1:
        return "a positive integer"
    if lo is not None:
        return f"an integer >= {lo}"
    if hi is not None:
        return f"an integer <= {hi}"
    return "an integer"


def check_int(value: Any, name: str, *, lo: int | None = None, hi: int | None = None,
              none_ok: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not a bool) within [``lo``, ``hi``];
    ``None`` passes when ``none_ok``. Otherwise an :class:`~dermsr.errors.InputError` that
    names ``name``, what was expected and what came."""
    if value is None and none_ok:
        return None
    if not is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        want = _describe(lo, hi)
        raise InputError(f"{name} must be {'None or ' + want if none_ok else want}, got {value!r}")
    return int(value)


def check_precision(value: Any, name: str = "precision") -> str:
    """``value`` if it is one of :data:`PRECISIONS`, else an :class:`~dermsr.errors.InputError`.

    >>> check_precision("int8")
    'int8'
    """
    if not isinstance(value, str) or value not in PRECISIONS:
        raise InputError(f"{name} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value
