"""``dermsr info``: version, built-in models, runtimes and why any is unavailable."""

from __future__ import annotations

import argparse
import json
import platform


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="show version, models and available runtimes")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def collect() -> dict:
    from .._version import __version__
    from ..backends import available, resolve_backend
    from ..models import DEFAULT_MODEL, builtin_model_names

    return {
        "dermsr": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "default_model": DEFAULT_MODEL,
        "models": builtin_model_names(),
        "auto": _auto(resolve_backend),
        "backends": [
            {"name": a.name, "available": a.available, "version": a.version, "reason": a.reason}
            for a in available()
        ],
    }


def _auto(resolve) -> str | None:
    """What ``--backend auto`` resolves to here (None if no runtime is installed)."""
    from ..errors import BackendUnavailableError

    try:
        return resolve("auto")
    except BackendUnavailableError:
        return None


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dermsr {info['dermsr']} (Python {info['python']}, {info['platform']})")
    print("\nmodels:")
    for name, desc in info["models"].items():
        mark = "*" if name == info["default_model"] else " "
        print(f" {mark} {name:28s} {desc}")
    print("\nbackends:")
    for b in info["backends"]:
        state = f"available  {b['version'] or ''}" if b["available"] else f"unavailable: {b['reason']}"
        print(f"   {b['name']:12s} {state}")
    auto = info["auto"] or "nothing (no runtime installed: pip install 'dermsr[ncnn]')"
    print(f"\nauto (the default backend) -> {auto}: the fastest fp32 runtime installed, as measured")
    return 0
