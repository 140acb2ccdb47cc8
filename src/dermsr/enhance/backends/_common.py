"""Small helpers shared by the exported-artifact backends (ONNX Runtime, NCNN)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ...errors import InputError
from ..registry import Availability

__all__ = [
    "VERBOSE_ENV",
    "check_batch",
    "default_threads",
    "missing_modules",
    "modules_availability",
    "quiet_stderr",
    "reject_extra",
]

#: Set (to anything but "" or "0") to let runtimes' own stderr lines through (``dermsr -v``).
VERBOSE_ENV = "DERMSR_VERBOSE"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Keep what native code writes to file descriptor 2 meanwhile out of the terminal.

    Runtimes' C++ code logs there directly (ExecuTorch's ``cpuinfo_utils.cpp ... Failed to open
    midr file`` lines on x86), where Python cannot filter it. The output is caught in a
    temporary file and dropped, or written back to stderr if the block raises (it may explain
    the error). Nothing is hidden when ``$DERMSR_VERBOSE`` is set.
    """
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        yield
        return
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    saved = os.dup(2)
    sink = tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stderr.write(text)
        sink.close()


def default_threads() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one).

    >>> default_threads() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The import names in ``modules`` that are not installed (found without importing them).

    >>> missing_modules(["numpy", "surely_not_a_module_dermsr"])
    ['surely_not_a_module_dermsr']
    """
    out = []
    for mod in modules:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(mod)
    return out


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
