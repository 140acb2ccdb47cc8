"""Small helpers shared by the exported-artifact backends (ONNX Runtime, NCNN)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ...errors import InputError
from ...machine import VERBOSE_ENV, missing_modules, quiet_stderr, usable_cores
from ..registry import Availability, BackendOptions

__all__ = [
    "VERBOSE_ENV",
    "check_batch",
    "check_precision",
    "default_threads",
    "missing_modules",
    "modules_availability",
    "quiet_stderr",
    "reject_extra",
]


def default_threads() -> int:
    """Cores this process may run on (:func:`dermsr.machine.usable_cores`).

    >>> default_threads() >= 1
    True
    """
    return usable_cores()


def modules_availability(
    name: str, modules: Iterable[str], extra: str, version: str | None
) -> Availability:
    """Availability of a backend that needs every one of ``modules``."""
    missing = missing_modules(modules)
    if missing:
        what = ", ".join(repr(m) for m in missing)
        return Availability(
            name, False, None,
            f"the package(s) {what} are not installed; pip install 'dermsr[{extra}]'", extra,
        )
    return Availability(name, True, version, None, extra)


def reject_extra(backend: str, extra: Mapping[str, Any], known: Iterable[str] = ()) -> None:
    """Refuse backend options this backend does not understand (typos would pass silently)."""
    unknown = sorted(set(extra) - set(known))
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InputError(
            f"backend {backend!r} got unknown option(s) {', '.join(unknown)}; it accepts: {allowed}"
        )


def check_batch(backend: str, x: np.ndarray, channels: int) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, channels, H, W) array, or an :class:`InputError`."""
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != channels or 0 in x.shape:
        got = getattr(x, "shape", type(x).__name__)
        raise InputError(f"backend {backend!r} expects a float32 (N, {channels}, H, W) array, got {got}")
    return np.ascontiguousarray(x, dtype=np.float32)


def check_precision(backend: str, options: BackendOptions, supported: Iterable[str]) -> str:
    """``options.precision`` if ``backend`` runs it, else an :class:`InputError` naming what it
    runs; ``calibration`` is refused unless the precision is int8."""
    supported = tuple(supported)
    if options.precision not in supported:
        raise InputError(
            f"backend {backend!r} does not run precision {options.precision!r}; it runs: "
            f"{', '.join(supported)}"
        )
    if options.calibration is not None and options.precision != "int8":
        raise InputError(f"calibration is only used with precision='int8', got precision={options.precision!r}")
    return options.precision
