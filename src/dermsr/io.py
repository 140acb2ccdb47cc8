"""Image files in and out: EXIF orientation, 8/16-bit, grey, RGBA, RGB order, atomic writes.

Arrays are RGB(A) in HWC order (or HW for grey), uint8 or uint16 as stored. OpenCV does the
decoding; BGR never leaves this module. Before decoding, the header (read with Pillow) is
checked against :data:`MAX_IMAGE_PIXELS`, so a small file that would decode to a huge image
(a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import importlib
import io as _io
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from .errors import ImageReadError, ImageWriteError, InputError, WriteError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "atomic_write_bytes",
    "encode_image",
    "image_header",
    "read_image",
    "write_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

#: Environment variable that sets :data:`MAX_IMAGE_PIXELS` when dermsr.io is imported (so worker
#: processes inherit it): a number of pixels, or ``0`` / ``none`` for no limit.
MAX_PIXELS_ENV = "DERMSR_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192


def _limit_from_env() -> int | None:
    value = os.environ.get(MAX_PIXELS_ENV, "").strip().lower()
    if not value:
        return DEFAULT_MAX_IMAGE_PIXELS
    if value in ("0", "none"):
        return None
    if not value.isdigit():
        raise InputError(f"{MAX_PIXELS_ENV} must be a number of pixels, 0 or 'none', got {value!r}")
    return int(value)


#: Largest image :func:`read_image` decodes, in pixels (width × height); ``None``: no limit.
#: Like Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` it is checked from the file's header before
#: decoding: a 1.2 MB PNG can decode to 20000×20000 (1.2 GB as uint8, 4.8 GB as float32).
#: The default, 8192×8192 = 67,108,864 pixels (64 MP), is above any camera photo; its ×4 output
#: is 3.2 GB as uint8 RGB. Raise it by assigning to ``dermsr.io.MAX_IMAGE_PIXELS``, with the
#: environment variable :data:`MAX_PIXELS_ENV`, or with ``dermsr enhance --max-pixels N``.
MAX_IMAGE_PIXELS: int | None = _limit_from_env()

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


#: Pillow's header readers of the formats dermsr reads, by the file's first bytes.
_HEADER_CLASSES = (
    (b"\x89PNG\r\n\x1a\n", "PngImagePlugin.PngImageFile"),
    (b"\xff\xd8\xff", "JpegImagePlugin.JpegImageFile"),
    (b"II*\x00", "TiffImagePlugin.TiffImageFile"),
    (b"MM\x00*", "TiffImagePlugin.TiffImageFile"),
    (b"BM", "BmpImagePlugin.BmpImageFile"),
)


def image_header(fp: BinaryIO) -> Any | None:
    """Pillow's view of an image file's header (``.size``, ``.mode``, ``.info``, EXIF) without
    decoding it, or ``None`` for a format not recognised here (OpenCV may still read it).

    The format's own Pillow class is used rather than ``PIL.Image.open``, whose own bomb check
    (a warning above 89 MP, an error above 179 MP) would stand in the way of
    :data:`MAX_IMAGE_PIXELS` and, above 179 MP, of the EXIF orientation.
    """
    head = fp.read(16)
    fp.seek(0)
    name = next((cls for magic, cls in _HEADER_CLASSES if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        name = "WebPImagePlugin.WebPImageFile"
    if name is None:
        return None
    module, cls = name.split(".")
    try:
        return getattr(importlib.import_module(f"PIL.{module}"), cls)(fp)
    except Exception:  # a header Pillow cannot parse: OpenCV decides
        return None


def _orientation(header: Any | None) -> int:
    try:
        return int(header.getexif().get(0x0112, 1)) if header is not None else 1
    except Exception:  # no EXIF or an unusual container: treat as upright
        return 1


def _check_pixels(p: Path, width: int, height: int) -> None:
    limit = MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageReadError(
            f"{p}: {width}×{height} = {width * height:,} pixels is more than the limit of {limit:,} "
            f"(a decompression bomb?); if the image is genuine, raise dermsr.io.MAX_IMAGE_PIXELS, "
            f"set {MAX_PIXELS_ENV}=N or pass dermsr enhance --max-pixels N (0: no limit)"
        )


def _looks_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker or a PNG without its IEND chunk."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in data[-4096:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def _jpeg_decode(data: bytes) -> Any:
    from PIL import JpegImagePlugin

    im = JpegImagePlugin.JpegImageFile(_io.BytesIO(data))
    im.load()
    return im


def _jpeg_cut_short(data: bytes) -> bool:
    """Whether a JPEG's image data stops before its last block (cut short, with its
    end-of-image marker put back).

    libjpeg decodes such a file with only a warning on stderr, reading zero bits where the data
    runs out: the missing part comes out flat grey and OpenCV accepts it. A complete file
    decodes to the same pixels with filler inserted before its final end-of-image marker
    (skipped as extraneous bytes); in a cut-short one the decoder reads the filler as image
    data, and the pixels change. Two decodes with Pillow (whose libjpeg is silent), compared
    in Pillow's own memory: ≈ 3× OpenCV's decode time (docs/enhancement.md).
    """
    from PIL import ImageChops

    eoi = data.rfind(b"\xff\xd9")
    try:
        whole = _jpeg_decode(data)
    except Exception:  # Pillow cannot decode it at all: OpenCV decides
        return False
    try:
        padded = _jpeg_decode(data[:eoi] + b"\x55" * 16 + data[eoi:])
    except Exception:  # the filler broke the decode: it was read as image data
        return True
    return ImageChops.difference(whole, padded).getbbox() is not None


def _file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _read_regular_file(p: Path) -> bytes:
    """The bytes of ``p`` if it is a regular file (or a symlink to one). Anything else is refused
    before a byte is read: a FIFO would block forever and /dev/zero never ends."""
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of blocking
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        if p.is_symlink():
            raise ImageReadError(f"{p}: broken symbolic link (its target {os.readlink(p)} does not exist)") from exc
        raise ImageReadError(f"{p}: no such file") from exc
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    kind = _file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise ImageReadError(f"{p}: not a regular file but {kind}")
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read()
        except OSError as exc:
            raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from exc


def read_image(path: str | os.PathLike[str], *, apply_orientation: bool = True) -> np.ndarray:
    """Read an image file as RGB / RGBA / grey, uint8 or uint16, EXIF orientation applied.

    Raises :class:`~dermsr.errors.ImageReadError` naming the path if the file is missing,
    not a regular file, unreadable, truncated (a JPEG cut short is detected even with its
    end marker put back), not an image, or larger than :data:`MAX_IMAGE_PIXELS` (checked from
    the header, before decoding).
    """
    p = Path(path)
    data = _read_regular_file(p)
    if not data:
        raise ImageReadError(f"{p}: file is empty")
    if _looks_truncated(data):
        raise ImageReadError(f"{p}: file is truncated (no end-of-image marker)")
    header = image_header(_io.BytesIO(data))
    if header is not None:
        _check_pixels(p, *header.size)
    if data[:3] == b"\xff\xd8\xff" and _jpeg_cut_short(data):
        raise ImageReadError(f"{p}: file is truncated (its JPEG image data stops before the last block)")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(f"{p}: not a readable image (OpenCV could not decode it)")
    _check_pixels(p, arr.shape[1], arr.shape[0])  # formats without a header reader here
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{p}: {arr.dtype} images are not supported; expected 8- or 16-bit")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
        arr = cv2.cvtColor(arr, code)
    if apply_orientation:
        orient = _orientation(header)
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

    Readers see either the old file or the complete new one, never a partial write. A failure
    (a full disk, say) raises :class:`~dermsr.errors.WriteError` naming ``path``.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    except OSError as exc:
        raise WriteError(f"{p}: cannot write ({exc})") from exc
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise WriteError(f"{p}: cannot write ({exc.strerror or exc})") from exc
        raise


def write_image(path: str | os.PathLike[str], image: Any, *, overwrite: bool = True, jpeg_quality: int = 95) -> Path:
    """Write an RGB/RGBA/grey array atomically; the format follows the file suffix."""
    p = Path(path)
    if not overwrite and p.exists():
        raise ImageWriteError(f"{p}: exists; pass overwrite=True to replace it")
    data = encode_image(image, p.suffix, jpeg_quality=jpeg_quality)
    try:
        atomic_write_bytes(p, data)
    except WriteError as exc:
        raise ImageWriteError(str(exc)) from exc.__cause__
    return p
