"""Image files in and out: EXIF orientation, 8/16-bit, grey, RGBA, RGB order, atomic writes.

Arrays are RGB(A) in HWC order (or HW for grey), uint8 or uint16 as stored. OpenCV does the
decoding; BGR never leaves this module.
"""

from __future__ import annotations

import io as _io
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import ImageReadError, ImageWriteError, InputError

__all__ = ["IMAGE_SUFFIXES", "atomic_write_bytes", "encode_image", "read_image", "write_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# EXIF orientation tag → operations that bring the image upright (EXIF 2.3, tag 0x0112)
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.rot90(a, k=1)[::-1],
    8: lambda a: np.rot90(a, k=1),
}


def _exif_orientation(data: bytes) -> int:
    try:
        from PIL import Image

        with Image.open(_io.BytesIO(data)) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # no EXIF or an unusual container: treat as upright
        return 1


def _looks_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker or a PNG without its IEND chunk."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in data[-4096:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def read_image(path: str | os.PathLike[str], *, apply_orientation: bool = True) -> np.ndarray:
    """Read an image file as RGB / RGBA / grey, uint8 or uint16, EXIF orientation applied.

    Raises :class:`~dermsr.errors.ImageReadError` naming the path if the file is missing,
    unreadable, truncated or not an image.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{p}: no such file") from exc
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(f"{p}: file is empty")
    if _looks_truncated(data):
        raise ImageReadError(f"{p}: file is truncated (no end-of-image marker)")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(f"{p}: not a readable image (OpenCV could not decode it)")
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{p}: {arr.dtype} images are not supported; expected 8- or 16-bit")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
        arr = cv2.cvtColor(arr, code)
    if apply_orientation:
        orient = _exif_orientation(data)
        if orient in _ORIENT:
            arr = np.ascontiguousarray(_ORIENT[orient](arr))
    return arr


def encode_image(image: np.ndarray, suffix: str, *, jpeg_quality: int = 95) -> bytes:
    """Encode an RGB/RGBA/grey uint8 or uint16 array in the format named by ``suffix``."""
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        got = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"expected a uint8 or uint16 array to write, got {got}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    elif image.ndim != 2:
        raise InputError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"unsupported image format {suffix!r}; expected one of {IMAGE_SUFFIXES}")
    if image.dtype == np.uint16 and suffix in (".jpg", ".jpeg", ".bmp", ".webp"):
        raise InputError(f"{suffix} cannot store 16-bit images without loss; write .png or .tif")
    if suffix in (".jpg", ".jpeg") and image.ndim == 3 and image.shape[2] == 4:
        raise InputError("JPEG cannot store an alpha channel; write .png")
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise ImageWriteError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {suffix}")
    return buf.tobytes()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: File mode of written files: what ``open()`` would give (0o666 minus the umask), not the
#: owner-only 0o600 of temporary files. Read once at import; umask has no read-only query.
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    Readers see either the old file or the complete new one, never a partial write.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_image(path: str | os.PathLike[str], image: Any, *, overwrite: bool = True, jpeg_quality: int = 95) -> Path:
    """Write an RGB/RGBA/grey array atomically; the format follows the file suffix."""
    p = Path(path)
    if not overwrite and p.exists():
        raise ImageWriteError(f"{p}: exists; pass overwrite=True to replace it")
    data = encode_image(image, p.suffix, jpeg_quality=jpeg_quality)
    try:
        atomic_write_bytes(p, data)
    except OSError as exc:
        raise ImageWriteError(f"{p}: cannot write ({exc})") from exc
    return p
