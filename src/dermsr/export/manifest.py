"""The JSON manifest written beside every exported artifact.

It tells a mobile app (or a later reader) everything needed to feed the model correctly:
input/output names, layout, value range, channel order, scale, tile shape, which weights it
came from and which tools built it.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import WriteError
from ..io import atomic_write_bytes
from ..models.spec import Model

__all__ = ["LOCK_NAME", "MANIFEST_NAME", "build_manifest", "tool_versions", "write_export", "write_manifest"]

MANIFEST_NAME = "dermsr-manifest.json"
#: Lock file an export holds in its output folder while it writes there (left in place, empty).
LOCK_NAME = ".dermsr-export.lock"
#: Seconds an export waits for another export's writes into the same folder (milliseconds
#: normally) before it gives up.
LOCK_TIMEOUT = 120.0


def write_export(out_dir: str | Path, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> Path:
    """Write an export's ``files`` (name → bytes, in order) and then its manifest into
    ``out_dir``, each atomically, all under the folder's export lock; return the manifest path.

    Without the lock, two exports into one folder replaced the files one at a time and could
    leave a mix (``model.onnx`` of one model, the manifest of the other). With it, the second
    export waits until the first has written its whole set, then writes its own: the folder
    always holds one export's complete set.
    """
    from filelock import FileLock, Timeout

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_NAME))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout:
        raise WriteError(
            f"{out}: another export has been writing here for {LOCK_TIMEOUT:.0f} s (lock {LOCK_NAME}); "
            "is it stuck?"
        ) from None
    try:
        for name, data in files.items():
            atomic_write_bytes(out / name, data)
        return write_manifest(out, manifest)
    finally:
        lock.release()


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
        "tile_context": model.tile_context,
        "size_requirements": model.config.size_requirements.to_dict(),
        "model": model.info(),
        "tools": tool_versions(tools),
        **(dict(extra) if extra else {}),
    }


def write_manifest(out_dir: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``dermsr-manifest.json`` atomically into ``out_dir``."""
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode())
    return path
