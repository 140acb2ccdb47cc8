"""Bundled sample data: three CC0 dermoscopic images from the ISIC Archive (dataset UDA-1).

ISIC_0000062 (1504×1129), ISIC_0000206 (1502×1051) and ISIC_0000271 (1024×768), the images
of the reference study; see ``samples/ATTRIBUTION_UDA-1.txt`` and ``samples/LICENSE_CC0.txt``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["sample_dir", "sample_images"]


def sample_dir() -> Path:
    """Folder holding the bundled sample images."""
    return Path(str(resources.files(__name__) / "samples"))


def sample_images() -> list[Path]:
    """Paths of the bundled sample images, sorted by name."""
    return sorted(sample_dir().glob("*.jpg"))
