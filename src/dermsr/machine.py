"""Facts about the machine this process runs on, in one place: usable cores, installed
modules, the CPU model and its estimated fp32 peak, and a description to publish next to
any measurement. Nothing here imports a runtime.

>>> usable_cores() >= 1
True
>>> missing_modules(["numpy", "surely_not_a_module_dermsr"])
['surely_not_a_module_dermsr']
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "VERBOSE_ENV",
    "CpuInfo",
    "cpu_info",
    "load_average",
    "machine_info",
    "missing_modules",
    "peak_gflops",
    "quiet_stderr",
    "simd_flops_per_cycle",
    "usable_cores",
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


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The import names in ``modules`` that are not installed (found without importing them)."""
    out = []
    for mod in modules:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(mod)
    return out


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class CpuInfo:
    """What the peak estimate rests on (all read from /proc/cpuinfo and ``lscpu``)."""

    model: str
    vendor: str
    family: int | None
    cores: int
    mhz: float | None
    mhz_source: str
    simd: str
    flops_per_cycle: int


def _proc_cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            break  # first processor only
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _lscpu_max_mhz() -> float | None:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        if line.lower().startswith("cpu max mhz"):
            try:
                return float(line.split(":", 1)[1])
            except ValueError:
                return None
    return None


def simd_flops_per_cycle(flags: set[str], vendor: str = "", family: int | None = None) -> tuple[str, int]:
    """fp32 FLOP per cycle per core for the widest FMA the flags show.

    Assumes two FMA pipes per core (true of Intel since Haswell and AMD since Zen 2), so
    FLOP/cycle = 2 pipes × lanes × 2 (multiply + add). AVX-512: 16 lanes → 64, except AMD
    Zen 4 (family 0x19), whose AVX-512 runs on 256-bit data paths → 32. AVX2+FMA: 8 lanes →
    32. AVX without FMA: 8 + 8 (separate add and multiply) → 16. SSE: 8.

    >>> simd_flops_per_cycle({"avx2", "fma", "avx512f"}, "GenuineIntel", 6)
    ('avx512-fma', 64)
    >>> simd_flops_per_cycle({"avx2", "fma", "avx512f"}, "AuthenticAMD", 25)
    ('avx512-fma (256-bit datapath)', 32)
    >>> simd_flops_per_cycle({"avx2", "fma"})
    ('avx2-fma', 32)
    """
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 25:
            return "avx512-fma (256-bit datapath)", 32
        return "avx512-fma", 64
    if "avx2" in flags and "fma" in flags:
        return "avx2-fma", 32
    if "avx" in flags:
        return "avx", 16
    if "asimd" in flags:  # ARM NEON: 2 pipes × 4 lanes × 2
        return "neon-fma", 16
    return "sse", 8


def cpu_info() -> CpuInfo:
    """This machine's CPU model, usable cores, clock and SIMD width."""
    info = _proc_cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    vendor = info.get("vendor_id", "")
    try:
        family: int | None = int(info.get("cpu family", ""))
    except ValueError:
        family = None
    cores = usable_cores()
    mhz = _lscpu_max_mhz()
    source = "lscpu 'CPU max MHz'"
    if mhz is None:
        try:
            mhz = float(info["cpu MHz"])
            source = "/proc/cpuinfo 'cpu MHz' (current/nominal clock; turbo not counted)"
        except (KeyError, ValueError):
            mhz, source = None, "unknown"
    simd, fpc = simd_flops_per_cycle(flags, vendor, family)
    model = info.get("model name") or platform.processor() or platform.machine()
    return CpuInfo(model, vendor, family, cores, mhz, source, simd, fpc)


def peak_gflops(threads: int | None = None, cpu: CpuInfo | None = None) -> float | None:
    """Estimated fp32 peak in GFLOP/s: cores used × GHz × FLOP/cycle (None if clock unknown).

    ``threads`` caps the cores counted (one thread per core; SMT siblings add no FMA pipes).
    """
    cpu = cpu or cpu_info()
    if cpu.mhz is None:
        return None
    cores = cpu.cores if threads is None else max(1, min(int(threads), cpu.cores))
    return cores * cpu.mhz / 1000.0 * cpu.flops_per_cycle



def machine_info() -> dict[str, Any]:
    """Platform, CPU model, logical cores (and those this process may use), Python."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_info().model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
    }
