"""Folders of high-resolution images: listing, the by-image train/validation split, decoding.

Used by training (``dermsr train``) and by scoring (``dermsr evaluate``), which must agree
on which images are held out.

>>> split = split_images(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], 0.25, seed=0)
>>> sorted(split.train + split.val) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
True
>>> split == split_images(["d.jpg", "c.jpg", "b.jpg", "a.jpg"], 0.25, seed=0)
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, read_image

__all__ = ["Split", "find_images", "list_images", "load_hr", "shrink_to_short_side", "split_images"]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def find_images(
    inputs: Iterable[Path], *, recursive: bool = False, exclude_dir: Path | None = None
) -> list[tuple[Path, Path]]:
    """``(file, path relative to its input folder)`` for every image file named or found.

    Folders are listed in sorted order (sub-folders too with ``recursive``); files inside
    ``exclude_dir`` (the output folder) are left out when it lies *below* an input folder,
    so a rerun never enhances its own outputs. Entries with an image suffix that are not
    regular files (a broken symlink, a FIFO, a link to a device) are listed too, and so are
    such paths named on the command line: reading them fails with the reason, which the run
    records, instead of their being skipped unseen.
    """
    excl = exclude_dir.resolve() if exclude_dir is not None else None
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            root = item.resolve()
            prune = excl if excl is not None and excl != root and _inside(excl, root) else None
            for f in sorted(item.glob("**/*" if recursive else "*")):
                if f.suffix.lower() not in IMAGE_SUFFIXES or f.is_dir():
                    continue
                if prune is not None and _inside(f.resolve(), prune):
                    continue
                found.append((f, f.relative_to(item)))
        elif os.path.lexists(item):  # a file, or something that is there but cannot be read
            found.append((item, Path(item.name)))
        else:
            raise InputError(f"{item}: no such file or folder")
    return found


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` or below it (readable regular files only), sorted by
    relative path: :func:`find_images` of one folder, recursively."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--data must be a folder of images, got {str(root)!r} (not a folder)")
    files = sorted((f for f, _ in find_images([root], recursive=True) if f.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {root}")
    return files


def _unit_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"dermsr-split:{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Split:
    """Image names (relative paths) for training and for validation; disjoint by construction."""

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)


def split_images(names: Sequence[str | Path], val_fraction: float, seed: int = 0) -> Split:
    """Split *images* (never patches) into train/val by a seeded hash of each name.

    An image goes to validation when ``sha256(seed, name)`` mapped to [0, 1) is below
    ``val_fraction``. The decision depends only on the name and the seed, so it is stable
    across runs, machines and the order of the list, and adding images never moves others.
    With ``val_fraction > 0`` and at least two images, at least one image is held out and at
    least one is kept for training. Pass names relative to the data folder (as
    :func:`list_images` sorts them) so the split does not depend on where the folder lives.
    """
    if not (0.0 <= val_fraction < 1.0):
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    keys = sorted({Path(n).as_posix() for n in names})
    if len(keys) != len(names):
        raise InputError("image names must be unique")
    u = {k: _unit_hash(k, seed) for k in keys}
    val = [k for k in keys if u[k] < val_fraction]
    if val_fraction > 0 and len(keys) >= 2:
        if not val:
            val = [min(keys, key=u.__getitem__)]
        if len(val) == len(keys):
            val.remove(max(keys, key=u.__getitem__))
    vs = set(val)
    return Split(train=[k for k in keys if k not in vs], val=sorted(vs))


def load_hr(path: str | Path, short_side: int = 0) -> np.ndarray:
    """Decode an image once as RGB uint8 HWC; downsize (area) so its short side ≤ ``short_side``.

    Grey images become three equal channels; alpha is dropped; 16-bit is rounded to 8-bit.
    ``short_side=0`` keeps the full resolution. Images are never enlarged.
    """
    img = read_image(path)
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return shrink_to_short_side(np.ascontiguousarray(img[:, :, :3]), short_side)


def shrink_to_short_side(img: np.ndarray, short_side: int) -> np.ndarray:
    """``img`` downsized (area) so its short side is at most ``short_side`` (0: unchanged);
    never enlarged. ``load_hr(path, n)`` is ``shrink_to_short_side(load_hr(path), n)``."""
    h, w = img.shape[:2]
    if short_side and min(h, w) > short_side:
        f = short_side / min(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img
