"""Image I/O: round trips of 8/16-bit, grey, RGBA; EXIF orientation; clear errors; atomic writes."""

from __future__ import annotations

import io as _io

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dermsr.errors import ImageReadError, InputError
from dermsr.io import read_image, write_image


@given(
    dtype=st.sampled_from([np.uint8, np.uint16]),
    channels=st.sampled_from([None, 3, 4]),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    suffix=st.sampled_from([".png", ".tif"]),
    data=st.data(),
)
@settings(max_examples=40, deadline=None)
def test_lossless_round_trip(tmp_path_factory, dtype, channels, h, w, suffix, data):
    shape = (h, w) if channels is None else (h, w, channels)
    img = data.draw(arrays(dtype, shape))
    path = tmp_path_factory.mktemp("io") / f"img{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == img.dtype and back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_rgb_order_is_kept(tmp_path):
    """A pure-red RGB array is red on disk (OpenCV's BGR never leaks)."""
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255
    write_image(tmp_path / "red.png", img)
    bgr = cv2.imread(str(tmp_path / "red.png"))
    assert bgr[0, 0].tolist() == [0, 0, 255]
    np.testing.assert_array_equal(read_image(tmp_path / "red.png"), img)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    Image = pytest.importorskip("PIL.Image")
    upright = np.zeros((20, 40, 3), np.uint8)
    upright[:10, :20] = (255, 0, 0)  # red block top-left
    # store the pixels so that applying `orientation` brings them upright
    stored = {1: upright, 3: upright[::-1, ::-1], 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    im.save(path, quality=100, exif=exif)
    got = read_image(path)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright).mean() < 8  # JPEG loss only
    raw = read_image(path, apply_orientation=False)
    assert raw.shape == stored.shape


def test_truncated_jpeg_and_png_are_refused(tmp_path, shared):
    data = (shared / "data" / "dermoscopy" / "ISIC_0000062.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg.*truncated"):
        read_image(p)
    _, buf = cv2.imencode(".png", np.zeros((30, 30), np.uint8))
    p2 = tmp_path / "cut.png"
    p2.write_bytes(buf.tobytes()[:-20])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(p2)


def test_missing_empty_and_non_image_files(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("hello, not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png"):
        read_image(tmp_path / "notes.png")


def test_write_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    first = np.full((4, 4, 3), 7, np.uint8)
    write_image(path, first)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    import dermsr.io as dio

    monkeypatch.setattr(dio.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, np.zeros((4, 4, 3), np.uint8))
    np.testing.assert_array_equal(read_image(path), first)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


def test_write_refuses_lossy_16_bit_and_alpha_jpeg(tmp_path):
    with pytest.raises(InputError, match="16-bit"):
        write_image(tmp_path / "a.jpg", np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(InputError, match="alpha"):
        write_image(tmp_path / "a.jpg", np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(InputError, match="uint8 or uint16"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(InputError, match="format"):
        write_image(tmp_path / "a.xyz", np.zeros((2, 2, 3), np.uint8))


def test_jpeg_encoding_is_readable(tmp_path):
    from PIL import Image

    img = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    write_image(tmp_path / "a.jpg", img)
    with Image.open(_io.BytesIO((tmp_path / "a.jpg").read_bytes())) as im:
        assert im.size == (4, 4) and im.mode == "RGB"


def test_written_files_get_normal_permissions(tmp_path):
    """Atomic writes go through a temporary file; the result must not stay owner-only (0600)."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    ref = tmp_path / "ref.bin"
    ref.write_bytes(b"x")  # what a plain open() gives under this umask
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == ref.stat().st_mode & 0o777
