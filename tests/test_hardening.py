"""Regression tests for issue 14, "Hardening: what broke when we tried to break it".

One test (or a few) per row of the issue, named ``test_hardening_<case>``; each failed before
its fix, except the ones that guard a fix against false alarms (complete JPEGs, flat images,
exports in turn), which say so.
"""

from __future__ import annotations

import csv
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import dermsr.io
from _support import tiny_model
from dermsr import Enhancer
from dermsr.backends import Backend, Capabilities, SessionBase, register, unregister
from dermsr.cli import main
from dermsr.enhance import convert
from dermsr.errors import BackendError, CheckpointError, ImageReadError, UnsafeCheckpointError
from dermsr.io import read_image, write_image
from dermsr.models import load_model


@contextmanager
def _backend(run: Callable[[np.ndarray, int], np.ndarray]):
    """Register a plugin backend named "hardening-test" whose session computes ``run(x, scale)``."""

    class _Test(Backend):
        name = "hardening-test"
        runtime_module = "numpy"

        def load(self, model, options):
            class Session(SessionBase):
                backend = "hardening-test"
                capabilities = Capabilities(thread_safe=True)

                def run(self, x):
                    return run(x, model.scale)

            return Session()

    register(_Test)
    try:
        yield "hardening-test"
    finally:
        unregister("hardening-test")


def _nearest(x: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(x, s, axis=2), s, axis=3)


# -- 1: a backend returning the wrong number of channels ---------------------------------------
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("tile", [None, 8])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_hardening_backend_wrong_channel_count(channels, tile, dtype):
    """1 or 4 channels back for 3 sent: a BackendError naming the shapes, never a grey image
    (the one channel broadcast into RGB), an (H, W, 1) result or a raw broadcast error."""

    def run(x, s):
        y = _nearest(x, s)
        return y[:, :1] if channels == 1 else np.concatenate([y, y[:, :1]], axis=1)

    image = np.random.default_rng(0).random((12, 10, 3), dtype=np.float32)
    if dtype == np.uint8:
        image = (image * 255).astype(np.uint8)
    with _backend(run) as name:
        e = Enhancer(tiny_model(), backend=name, tile=tile)
        with pytest.raises(BackendError, match=rf"returned shape \(1, {channels}, .*expected \(1, 3, "):
            e.enhance(image)


# -- 4: too little tile context is warned, as the docstring promised ----------------------------
def test_hardening_tile_pad_below_receptive_field_warns(isic_crop):
    model = tiny_model(num_conv=4)  # receptive field 6
    with pytest.warns(UserWarning, match=r"tile_pad=0 is less than the tile context .*\(6 pixels, its receptive field\)"):
        e = Enhancer(model, tile=16, tile_pad=0)
    # the warning is true: seams appear
    x = (isic_crop.transpose(2, 0, 1)[None] / 255).astype(np.float32)
    assert np.abs(e.run(x) - Enhancer(model, tile=None).run(x)).max() > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Enhancer(model, tile=16)  # the default context: exact, no warning
        Enhancer(model, tile=16, tile_pad=6)
        Enhancer(model, tile=None, tile_pad=0)  # never tiled: nothing to warn about


# -- 14: constant in-range garbage ----------------------------------------------------------------
@pytest.mark.parametrize("value", [10.0, 0.0, 1.0])
def test_hardening_constant_in_range_garbage(isic_crop, value):
    """A runtime that fills its output with one in-range value (10.0 came out saturated white,
    0.0 black) is refused, tiled or not, for a real photo."""
    with _backend(lambda x, s: np.full((*x.shape[:2], x.shape[2] * s, x.shape[3] * s), value, np.float32)) as name:
        for tile in (None, 16):
            with pytest.raises(BackendError, match=rf"'{name}' returned the constant {value:g} for every pixel"):
                Enhancer(tiny_model(), backend=name, tile=tile).enhance(isic_crop)


def test_hardening_constant_garbage_for_a_flat_input():
    """A flat input may give a flat output, but not one far from the input's value."""
    flat = np.full((6, 5, 3), 0.25, np.float32)
    with _backend(lambda x, s: np.full((*x.shape[:2], x.shape[2] * s, x.shape[3] * s), 10.0, np.float32)) as name:
        with pytest.raises(BackendError, match="constant 10"):
            Enhancer(tiny_model(), backend=name).enhance(flat)
    with _backend(_nearest) as name:  # flat in, the same flat value out: a valid result
        np.testing.assert_array_equal(Enhancer(tiny_model(), backend=name).enhance(flat), np.full((24, 20, 3), 0.25))


@pytest.mark.parametrize("value", [0, 128, 255])
def test_hardening_real_models_on_flat_images_pass_the_constant_check(value):
    """No false alarm on flat inputs (tiled or not): never refused as constant garbage."""
    for model in ("realesr-animevideov3-x4", "dermsr-isic-x4", tiny_model()):
        for tile in (None, 4):
            out = Enhancer(model, threads=1, tile=tile).enhance(np.full((9, 7, 3), value, np.uint8))
            assert out.shape == (36, 28, 3)


# -- 2: a decompression bomb -----------------------------------------------------------------------
def _png_bomb(path: Path, side: int = 20000) -> Path:
    """A 1-bit grey PNG of ``side``×``side`` zeros: ~0.1 MB on disk, 400 MP decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if an image is decoded (the bomb must be refused from its header)."""
    def imdecode(*args):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(dermsr.io.cv2, "imdecode", imdecode)


def test_hardening_decompression_bomb_is_refused_from_its_header(tmp_path, no_decoding):
    bomb = _png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ImageReadError, match=r"bomb\.png: 20000×20000 = 400,000,000 pixels is more than "
                                             r"the limit of 67,108,864 .*MAX_IMAGE_PIXELS"):
        read_image(bomb)


def test_hardening_decompression_bomb_cli(tmp_path, capsys, no_decoding):
    (tmp_path / "in").mkdir()
    bomb = _png_bomb(tmp_path / "in" / "bomb.png")
    assert main(["enhance", str(bomb), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "400,000,000 pixels is more than the limit" in err
    assert "--max-pixels" in err
    rows = list(csv.DictReader(open(tmp_path / "out" / "manifest.csv", newline="")))
    assert [r["status"] for r in rows] == ["failed"] and "400,000,000 pixels" in rows[0]["error"]


def test_hardening_pixel_limit_is_configurable(tmp_path, monkeypatch, capsys):
    img = tmp_path / "a.png"
    write_image(img, np.zeros((20, 30, 3), np.uint8))
    monkeypatch.setattr(dermsr.io, "MAX_IMAGE_PIXELS", 599)
    with pytest.raises(ImageReadError, match="30×20 = 600 pixels is more than the limit of 599"):
        read_image(img)
    monkeypatch.setattr(dermsr.io, "MAX_IMAGE_PIXELS", 600)
    assert read_image(img).shape == (20, 30, 3)
    monkeypatch.setattr(dermsr.io, "MAX_IMAGE_PIXELS", None)
    assert read_image(img).shape == (20, 30, 3)
    # the CLI flag sets the limit here and, through the environment, in worker processes
    monkeypatch.delenv(dermsr.io.MAX_PIXELS_ENV, raising=False)
    assert main(["enhance", str(img), "-o", str(tmp_path / "o1"), "--quiet", "--max-pixels", "599"]) == 1
    assert "more than the limit of 599" in capsys.readouterr().err
    assert os.environ[dermsr.io.MAX_PIXELS_ENV] == "599"
    assert main(["enhance", str(img), "-o", str(tmp_path / "o2"), "--quiet", "--max-pixels", "0"]) == 0
    assert dermsr.io.MAX_IMAGE_PIXELS is None


@pytest.mark.parametrize(("value", "limit"), [("", 67108864), ("1000", 1000), ("0", None), ("none", None)])
def test_hardening_pixel_limit_from_the_environment(value, limit):
    code = "import dermsr.io; print(dermsr.io.MAX_IMAGE_PIXELS)"
    env = {**os.environ, "DERMSR_MAX_IMAGE_PIXELS": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(limit)


def test_hardening_pillow_bomb_check_does_not_drop_the_exif_orientation(tmp_path, monkeypatch):
    """Found while fixing row 2: the EXIF orientation was read with PIL.Image.open, whose own
    bomb check warns above PIL.Image.MAX_IMAGE_PIXELS and raises above twice that; the error
    was swallowed, so an image over 179 MP (within a raised dermsr limit) came out unrotated."""
    from PIL import Image

    upright = np.zeros((20, 40, 3), np.uint8)
    upright[:10, :20] = (255, 0, 0)
    im = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "o.jpg", quality=100, exif=exif)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 800 pixels: over Pillow's error threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_image(tmp_path / "o.jpg")
    assert got.shape == upright.shape and np.abs(got.astype(int) - upright).mean() < 8  # JPEG loss only


def test_hardening_decompression_bomb_tiling_holds_no_float_copy_of_the_input():
    """enhance() of an 8/16-bit RGB or grey photo converts each tile's window to float on its
    own: the NumPy memory traced beyond the (unavoidable) integer result stays below a float32
    copy of the input, and the result equals the float path exactly."""
    import tracemalloc

    rng = np.random.default_rng(5)
    for image in (rng.integers(0, 256, (512, 384, 3)).astype(np.uint8),
                  rng.integers(0, 65536, (512, 384)).astype(np.uint16),
                  rng.integers(0, 256, (512, 384, 1)).astype(np.uint8)):
        with _backend(_nearest) as name:
            e = Enhancer(tiny_model(), backend=name, tile=32)
            tracemalloc.start()
            try:
                got = e.enhance(image)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            prep = convert.prepare(image)
            want = convert.restore(e.run(prep.x), prep)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        float_input = 3 * image.shape[0] * image.shape[1] * 4
        assert peak - got.nbytes < float_input / 2, (peak - got.nbytes, float_input)


# -- 5: a JPEG cut short with its end marker put back ---------------------------------------------
def _jpeg(image: np.ndarray, progressive: bool) -> bytes:
    import cv2

    return cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_hardening_truncated_jpeg_with_end_marker(tmp_path, shared, progressive, keep):
    """Cut anywhere in the image data and the end-of-image marker re-appended: OpenCV decoded
    the missing part as flat grey (a libjpeg warning on stderr only); now refused."""
    image = read_image(shared / "data" / "dermoscopy" / "ISIC_0000062.jpg")
    data = _jpeg(image, progressive)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")
    with pytest.raises(ImageReadError, match=r"cut\.jpg: file is truncated \(its JPEG image data stops"):
        read_image(path)


@pytest.mark.parametrize("progressive", [False, True])
def test_hardening_complete_jpegs_still_read_exactly(tmp_path, shared, progressive):
    """No false alarm: complete JPEGs (colour, grey, with EXIF, with bytes after the end
    marker) read as before, pixel for pixel what OpenCV decodes."""
    import cv2

    image = read_image(shared / "data" / "dermoscopy" / "ISIC_0000206.jpg")
    for name, data in (("rgb", _jpeg(image, progressive)),
                       ("grey", cv2.imencode(".jpg", image[:, :, 0], [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()),
                       ("trailer", _jpeg(image[:64, :80], progressive) + b"\0" * 100)):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(data)
        want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        want = want if want.ndim == 2 else want[:, :, ::-1]
        np.testing.assert_array_equal(read_image(path), want)
    for sample in (shared / "data" / "dermoscopy").glob("*.jpg"):
        assert read_image(sample).ndim == 3


# -- 10 (reading): files that are not regular files ---------------------------------------------------
_READ = "import sys, dermsr.io\ntry:\n    dermsr.io.read_image(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"


def _read_in_a_subprocess(path: Path) -> str:
    """read_image(path) in a child with 4 GB of address space and a minute: before the fix a
    FIFO blocked forever and /dev/zero was read until memory ran out."""
    import resource

    def limit() -> None:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        except (ValueError, OSError):  # not settable here (macOS): the timeout still guards
            pass

    try:
        out = subprocess.run([sys.executable, "-c", _READ, str(path)], capture_output=True, text=True,
                             timeout=60, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return "blocked"
    return (out.stdout + out.stderr[-300:]).strip()


@pytest.mark.parametrize(("kind", "message"), [
    ("fifo", "not a regular file but a FIFO"),
    ("devzero", "not a regular file but a character device"),
    ("dangling", "broken symbolic link (its target"),
    ("folder", "not a regular file but a folder"),
])
def test_hardening_read_image_refuses_what_is_not_a_regular_file(tmp_path, kind, message):
    path = tmp_path / "x.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(tmp_path / "gone.png")
    else:
        path.mkdir()
    got = _read_in_a_subprocess(path)
    assert got.startswith(f"{path}: {message}"), got


# -- 3: malformed values in an NCNN .param ----------------------------------------------------------
def _ncnn_copy(tmp_path: Path, stem: str = "REALESRGAN_ANIMAVIDEOV3_UP2X") -> tuple[Path, Path]:
    from dermsr.models import ncnn_weights_dir

    d = ncnn_weights_dir()
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    param.write_bytes((d / f"{stem}.param").read_bytes())
    binf.write_bytes((d / f"{stem}.bin").read_bytes())
    return param, binf


@pytest.mark.parametrize(("layer", "key", "value"), [
    ("Conv_2", 0, "0"),  # ZeroDivisionError before
    ("Conv_2", 0, "-64"),  # "can only specify one unknown dimension" before
    ("Conv_2", 6, "-36864"),  # a reshape error before
])
def test_hardening_malformed_ncnn_param_values(tmp_path, capsys, layer, key, value):
    param, _ = _ncnn_copy(tmp_path)
    text = param.read_text()
    line = next(ln for ln in text.splitlines() if ln.split()[1:2] == [layer])
    bad = " ".join(f"{key}={value}" if t.startswith(f"{key}=") else t for t in line.split())
    param.write_text(text.replace(line, bad))
    with pytest.raises(CheckpointError, match=rf"m\.param: layer {layer} \(Convolution\): parameter {key}={value} is not an integer >= 1"):
        load_model(param)
    src = tmp_path / "a.png"
    write_image(src, np.zeros((4, 4, 3), np.uint8))
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--model", str(param), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and f"parameter {key}={value}" in err


def test_hardening_any_bad_ncnn_param_value_is_a_checkpoint_error(tmp_path):
    """Every parameter of every kind of layer set to a bad value: only CheckpointError (or a
    model, where the value is harmless), never ZeroDivisionError, ValueError, OverflowError..."""
    from dermsr.models import import_ncnn

    param, binf = _ncnn_copy(tmp_path)
    text = param.read_text()
    lines = [ln for ln in text.splitlines() if ln.split()[1:2] in (
        ["Conv_0"], ["PRelu_1"], ["Conv_34"], ["DepthToSpace_35"], ["Resize_37"], ["Resize_40"])]
    assert len(lines) == 6
    for line in lines:
        toks = line.split()
        for i, tok in enumerate(toks):
            if "=" not in tok:
                continue
            key = tok.split("=")[0]
            for value in ("0", "-64", "-36864", "abc", "inf", "nan", "1e400", "99999999999"):
                bad = " ".join([*toks[:i], f"{key}={value}", *toks[i + 1:]])
                param.write_text(text.replace(line, bad))
                try:
                    import_ncnn(param, binf)
                except CheckpointError:
                    pass


def test_hardening_cli_unexpected_error_is_one_line_without_traceback(monkeypatch, capsys):
    """The CLI's safety net for errors nobody anticipated: one line, exit 1; --debug re-raises."""
    import dermsr.cli.info

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(dermsr.cli.info, "run", boom)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected error: ZeroDivisionError: division by zero" in err
    assert "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "info"])


# -- 6: integer weights in a .pth -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_hardening_integer_pth_weights_are_refused_on_load(tmp_path, dtype):
    """They were converted to float before the dtype check, loaded, and failed later as
    non-finite output; now refused on load, naming the tensor and its dtype."""
    import torch

    sd = {k: v.to(getattr(torch, dtype)) for k, v in tiny_model().state_dict().items()}
    torch.save(sd, tmp_path / "int.pth")
    with pytest.raises(CheckpointError, match=rf"int\.pth: body\.0\.weight: expected floating-point weights, got torch\.{dtype}"):
        load_model(tmp_path / "int.pth")


# -- 7: random bytes / an empty file as .pth --------------------------------------------------------
@pytest.mark.parametrize(("content", "message"), [
    (bytes(np.random.default_rng(7).integers(0, 256, 1000, dtype=np.uint8)),
     "not a PyTorch checkpoint: it is neither a zip archive"),
    (b"\x80" + bytes(np.random.default_rng(8).integers(0, 256, 999, dtype=np.uint8)),
     "not a readable PyTorch checkpoint"),
    (b"", "the file is empty; expected a PyTorch checkpoint"),
    (b"hello world\n" * 10, "not a PyTorch checkpoint: it is neither a zip archive"),
])
def test_hardening_random_or_empty_pth(tmp_path, content, message):
    """1000 random bytes were called an unsafe pickle, with torch's advice to load it with
    weights_only=False (which would run code); an empty file gave 'not a readable PyTorch
    checkpoint ()'. Now a plain CheckpointError that says what the file is."""
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        load_model(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "weights_only" not in str(info.value) and "()" not in str(info.value)


def test_hardening_unsafe_pickle_message_names_the_code_not_the_unsafe_option(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("this would run code",))

    torch.save({"params": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"needs to run code to unpickle \(print\)") as info:
        load_model(tmp_path / "evil.pth")
    assert "weights_only" not in str(info.value)


# -- 10 (folders): entries that are not readable regular files ------------------------------------
def _special_entries(folder: Path) -> dict[str, str]:
    """A broken symlink, a symlink to /dev/zero and a FIFO, all named like images: name → reason."""
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.png")
    return {"dangling.png": "broken symbolic link", "zero.png": "not a regular file but a character device",
            "fifo.png": "not a regular file but a FIFO"}


def test_hardening_folder_with_special_entries(tmp_path, capsys):
    """They were skipped silently and absent from the manifest; now each is a failed row with
    its reason, the good file is enhanced, and the exit status says something failed."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_image(src / "good.png", np.zeros((4, 4, 3), np.uint8))
    (src / "notes.txt").write_text("not an image, not listed")
    reasons = _special_entries(src)
    assert main(["enhance", str(src), "-o", str(out), "--quiet"]) == 1
    rows = {Path(r["input"]).name: r for r in csv.DictReader(open(out / "manifest.csv", newline=""))}
    assert set(rows) == {"good.png", *reasons}
    assert rows["good.png"]["status"] == "ok"
    for name, reason in reasons.items():
        assert rows[name]["status"] == "failed" and reason in rows[name]["error"], rows[name]
    assert "3 failed" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["dangling.png", "zero.png", "fifo.png"])
def test_hardening_special_entry_named_on_the_command_line(tmp_path, capsys, name):
    """Named on the command line they were "no such file or folder" (wrong): now the same
    failed row with the real reason; a path that is not there at all still is an error."""
    reason = _special_entries(tmp_path)[name]
    assert main(["enhance", str(tmp_path / name), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    assert reason in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err


# -- 11: -o equal to the input folder -------------------------------------------------------------
def test_hardening_output_folder_is_the_input_folder(tmp_path):
    """Second run after deleting the manifest wrote a_x4_x4.png (it enhanced its own outputs);
    now the outputs are recognised by name beside their source, whatever their format."""
    d = tmp_path / "photos"
    write_image(d / "a.png", np.zeros((4, 4, 3), np.uint8))
    write_image(d / "sub" / "b.jpg", np.zeros((4, 6, 3), np.uint8))
    assert main(["enhance", str(d), "-o", str(d), "--recursive", "--quiet"]) == 0
    (d / "manifest.csv").unlink()
    assert main(["enhance", str(d), "-o", str(d), "--recursive", "--quiet"]) == 0
    (d / "manifest.csv").unlink()
    assert main(["enhance", str(d), "-o", str(d), "--recursive", "--quiet", "--format", "png"]) == 0
    names = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert names == ["a.png", "a_x4.png", "manifest.csv", "sub/b.jpg", "sub/b_x4.jpg", "sub/b_x4.png"]


# -- 12: RGBA (and 16-bit) with --format jpg -----------------------------------------------------
def test_hardening_alpha_with_jpg_format_goes_to_png(tmp_path):
    """RGBA with --format jpg failed after the work was done ("JPEG cannot store an alpha
    channel") while 16-bit went to PNG; now both go to PNG, decided before any work."""
    from PIL import Image

    src, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(12)
    rgba = rng.integers(0, 256, (6, 5, 4)).astype(np.uint8)
    write_image(src / "rgba.png", rgba)
    write_image(src / "deep.png", rng.integers(0, 65536, (6, 5, 3)).astype(np.uint16))
    write_image(src / "plain.png", rgba[:, :, :3])
    Image.fromarray(rgba[:, :, :2], "LA").save(src / "grey_alpha.png")
    Image.fromarray(rgba[:, :, :3]).save(src / "transparent_colour.png", transparency=(0, 0, 0))
    assert main(["enhance", str(src), "-o", str(out), "--format", "jpg", "--quiet"]) == 0
    outputs = sorted(p.name for p in out.iterdir() if p.name != "manifest.csv" and not p.name.startswith("."))
    assert outputs == ["deep_x4.png", "grey_alpha_x4.png", "plain_x4.jpg", "rgba_x4.png", "transparent_colour_x4.png"]
    assert read_image(out / "rgba_x4.png").shape == (24, 20, 4)


def test_hardening_alpha_the_probe_missed_fails_before_the_work(tmp_path, monkeypatch):
    """Where the header gives no clue, an RGBA image planned as JPEG fails on reading, before
    anything is enhanced."""
    from dermsr import folder

    write_image(tmp_path / "rgba.png", np.zeros((4, 4, 4), np.uint8))
    monkeypatch.setattr(folder, "probe_alpha", lambda path: False)
    jobs, refused = folder.plan_jobs([(tmp_path / "rgba.png", Path("rgba.png"))], tmp_path / "out", fmt="jpg", scale=4)
    assert not refused and jobs[0].dest.name == "rgba_x4.jpg"

    class NoWork:
        backend_name = "none"

        def enhance(self, image):
            raise AssertionError("enhanced before the format was checked")

    result = folder.process_one(jobs[0], NoWork())
    assert result.status == "failed" and "alpha channel, which .jpg cannot store; use --format png" in result.error


# -- 13: the manifest on a full disk ---------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the manifest's descriptor in /proc")
def test_hardening_manifest_append_on_a_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    """"error: [Errno 28] No space left on device" did not say which file: now it does."""
    import errno

    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("manifest.csv"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    write_image(tmp_path / "in" / "a.png", np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(os, "fsync", fsync)
    assert main(["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out' / 'manifest.csv'}: cannot append to the manifest (No space left on device)" in err


def test_hardening_atomic_write_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    """Found with row 13: every atomic write (exports, reports, images) raised a bare
    "[Errno 28] No space left on device"; now a WriteError naming the file, nothing left."""
    import errno

    from dermsr.errors import ImageWriteError, WriteError
    from dermsr.io import atomic_write_bytes

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(WriteError, match=r"model\.onnx: cannot write \(No space left on device\)"):
        atomic_write_bytes(tmp_path / "model.onnx", b"x" * 100)
    with pytest.raises(ImageWriteError, match=r"a\.png: cannot write \(No space left on device\)$"):
        write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


# -- 9: SIGKILL while an artifact is built into the cache ----------------------------------------
_KILLED_BUILD = """
import os, signal, sys
from dermsr.export.cache import cached_artifact

def build(folder):
    (folder / "model.ncnn.param").write_text("half of it")
    os.kill(os.getpid(), signal.SIGKILL)

cached_artifact("ncnn", "0" * 64, {"case": "killed"}, build)
"""


def test_hardening_killed_cache_build_leaves_no_temporary_folder(tmp_path, monkeypatch):
    from dermsr.export.cache import artifact_key, cached_artifact

    monkeypatch.setenv("DERMSR_CACHE_DIR", str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    key = artifact_key("ncnn", "0" * 64, {"case": "killed"})
    root = tmp_path / "ncnn"
    assert [p.name.startswith(f".{key}.") for p in root.iterdir() if p.is_dir()] == [True]  # what the kill left
    folder = cached_artifact("ncnn", "0" * 64, {"case": "killed"}, lambda f: (f / "model.ncnn.param").write_text("ok"))
    assert (folder / "model.ncnn.param").read_text() == "ok"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [key]


# -- 8: two exports into one folder -------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "ncnn", "pte"])
def test_hardening_two_exports_into_one_folder(tmp_path, capsys, monkeypatch, fmt):
    """Files were replaced one at a time with no lock over the set (model.onnx of one model,
    the manifest of the other). Now an export writes its whole set under the folder's lock:
    while another export holds it, nothing is written (here the wait is cut to 0.2 s so that
    it gives up and says so)."""
    import torch
    from filelock import FileLock

    from dermsr.export import manifest

    monkeypatch.setattr(manifest, "LOCK_TIMEOUT", 0.2)
    out = tmp_path / "app"
    out.mkdir()
    torch.save(tiny_model().state_dict(), tmp_path / "tiny.pth")
    with FileLock(str(out / manifest.LOCK_NAME)):
        code = main(["export", "--format", fmt, "--out", str(out), "--model", str(tmp_path / "tiny.pth")])
    assert code == 2
    assert f"{out}: another export has been writing here" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [manifest.LOCK_NAME]


def test_hardening_exports_in_turn_into_one_folder_stay_consistent(tmp_path):
    """After the lock is released the next export runs; each manifest matches its files."""
    import hashlib
    import json

    from dermsr.export.ncnn import export_ncnn
    from dermsr.export.onnx import export_onnx

    out = tmp_path / "app"
    for export, model in ((export_onnx, tiny_model(seed=1)), (export_ncnn, tiny_model(seed=2)),
                          (export_onnx, tiny_model(seed=3))):
        manifest = json.loads(export(model, out).read_text())
        assert manifest["model"]["sha256"] == model.sha256
        for name, digest in manifest["file_sha256"].items():
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert not [p for p in out.iterdir() if p.name.startswith(".dermsr-pnnx")]
