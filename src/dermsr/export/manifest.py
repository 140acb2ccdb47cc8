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
from ..io import atomic_write_bytes
from ..models.spec import Model

__all__ = ["MANIFEST_NAME", "build_manifest", "tool_versions", "write_manifest"]

MANIFEST_NAME = "dermsr-manifest.json"


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
