"""On-disk cache of exported artifacts (ONNX files, NCNN param/bin, ExecuTorch .pte).

Location: ``$DERMSR_CACHE_DIR`` if set, else the user cache folder (``$XDG_CACHE_HOME/dermsr``
or ``~/.cache/dermsr`` on Linux, ``~/Library/Caches/dermsr`` on macOS,
``%LOCALAPPDATA%\\dermsr\\Cache`` on Windows).

An entry is a folder named by a key hashed from the model's weights hash, the artifact kind,
its shape/options and the tool versions that built it. Each entry holds ``entry.json``
listing every file with its size and SHA-256. Entries are built in a temporary folder, hashed,
then renamed into place, under a file lock, so concurrent processes never see or produce a
half-written entry; the temporary folder of a build that was killed is removed by the next
process that takes that entry's lock. An entry whose files do not match their recorded hashes, or that fails
the caller's validation, is deleted and rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..errors import ExportError

__all__ = ["ENV_VAR", "artifact_key", "cache_dir", "cached_artifact", "file_sha256"]

ENV_VAR = "DERMSR_CACHE_DIR"
ENTRY_FILE = "entry.json"


def cache_dir() -> Path:
    """Root folder of dermsr's artifact cache (created on demand)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "dermsr" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dermsr"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dermsr"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_key(kind: str, model_sha256: str, parts: Mapping[str, Any]) -> str:
    """Stable key for an artifact: kind, model weights hash and every option/tool version."""
    payload = json.dumps({"kind": kind, "model": model_sha256, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _entry_ok(folder: Path) -> bool:
    try:
        record = json.loads((folder / ENTRY_FILE).read_text())
        files = record["files"]
        for name, meta in files.items():
            p = folder / name
            if p.stat().st_size != meta["size"] or file_sha256(p) != meta["sha256"]:
                return False
        return bool(files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_artifact(
    kind: str,
    model_sha256: str,
    parts: Mapping[str, Any],
    build: Callable[[Path], None],
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Return the cache folder holding the artifact, building it with ``build(tmp_folder)`` if needed.

    ``build`` writes the artifact's files into the folder it is given. ``validate(folder)``
    (optional) raises if a cached entry cannot be used, e.g. the runtime fails to load it;
    such an entry is removed and rebuilt once.
    """
    root = cache_dir() / kind
    root.mkdir(parents=True, exist_ok=True)
    key = artifact_key(kind, model_sha256, parts)
    folder = root / key
    with FileLock(str(root / f"{key}.lock")):
        # a build of this key that was killed (SIGKILL, power loss) left its temporary folder;
        # nobody else is building this key while we hold its lock, so any such folder is stale
        for stale in root.glob(f".{key}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        if folder.exists():
            usable = _entry_ok(folder)
            if usable and validate is not None:
                try:
                    validate(folder)
                except Exception:
                    usable = False
            if usable:
                return folder
            shutil.rmtree(folder, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            build(tmp)
            files = {
                p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
                for p in sorted(tmp.iterdir())
                if p.is_file()
            }
            if not files:
                raise ExportError(f"building the {kind} artifact produced no files")
            record = {"kind": kind, "model_sha256": model_sha256, "parts": dict(parts), "files": files}
            (tmp / ENTRY_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
            if validate is not None:
                validate(tmp)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder
