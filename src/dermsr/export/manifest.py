"""The JSON manifest written beside every exported artifact.

It tells a mobile app (or a later reader) everything needed to feed the model correctly:
input/output names, layout, value range, channel order, scale, tile shape, which weights it
came from and which tools built it.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
import platform
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .._version import __version__
from ..errors import InputError
from ..io import atomic_write_bytes
from ..models.spec import Model

__all__ = ["LOCK_NAME", "MANIFEST_NAME", "build_manifest", "locked_export", "tool_versions", "write_manifest"]

MANIFEST_NAME = "dermsr-manifest.json"
#: Lock file an export holds in its output folder (left there, empty, like any lock file).
LOCK_NAME = ".dermsr-export.lock"

F = TypeVar("F", bound=Callable[..., Path])


def locked_export(func: F) -> F:
    """Run an ``export_*(model, out_dir, ...)`` holding ``out_dir``'s export lock, from before
    the model is converted until its manifest is written: two exports into one folder would
    otherwise replace the files one at a time and leave a mix (one model's file, the other's
    manifest). A second export into a folder that is being written is refused at once."""

    @functools.wraps(func)
    def export(model: Any, out_dir: str | Path, *args: Any, **kwargs: Any) -> Path:
        from filelock import FileLock, Timeout

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(out / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise InputError(
                f"{out}: another 'dermsr export' is writing here (lock {LOCK_NAME}); wait for it "
                "to finish or export into another folder"
            ) from None
        try:
            return func(model, out_dir, *args, **kwargs)
        finally:
            lock.release()

    return export  # type: ignore[return-value]


def tool_versions(dists: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of the named distributions (None where not installed)."""
    out: dict[str, str | None] = {"dermsr": __version__, "python": platform.python_version()}
    for d in dists:
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = None
    return out


def build_manifest(
    model: Model,
    *,
    fmt: str,
    files: Mapping[str, str],
    input_name: str,
    output_name: str,
    tile_shape: tuple[int, int] | None,
    tools: Iterable[str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Manifest fields common to every format; ``files`` maps role → file name."""
    return {
        "format": fmt,
        "files": dict(files),
        "input": {
            "name": input_name,
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": "float32",
            "value_range": [0.0, 1.0],
            "shape": [1, model.config.num_in_ch, *(tile_shape or ("H", "W"))],
        },
        "output": {
            "name": output_name,
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": "float32",
            "value_range": [0.0, 1.0],
            "note": "clamp to [0, 1]; the network may overshoot slightly",
            "shape": [1, model.config.num_out_ch,
                      *((d * model.scale for d in tile_shape) if tile_shape else ("H*scale", "W*scale"))],
        },
        "scale": model.scale,
        "tile_shape": list(tile_shape) if tile_shape else None,
        "receptive_field": model.receptive_field,
        "model": model.info(),
        "tools": tool_versions(tools),
        **(dict(extra) if extra else {}),
    }


def write_manifest(out_dir: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``dermsr-manifest.json`` atomically into ``out_dir``."""
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode())
    return path
