"""Shared fixtures: the ../shared data folder, small images, a private artifact cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("DERMSR_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set DERMSR_SHARED)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Never touch the user's real cache from tests."""
    old = os.environ.get("DERMSR_CACHE_DIR")
    os.environ["DERMSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("dermsr-cache"))
    yield
    if old is None:
        os.environ.pop("DERMSR_CACHE_DIR", None)
    else:
        os.environ["DERMSR_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def isic_crop(shared: Path) -> np.ndarray:
    """A 64×48 RGB uint8 crop of a real ISIC dermoscopic image (downscaled)."""
    import cv2

    bgr = cv2.imread(str(shared / "data" / "dermoscopy" / "ISIC_0000062.jpg"))
    crop = bgr[300:780, 400:1040]
    small = cv2.resize(crop, (64, 48), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[:, :, ::-1])
