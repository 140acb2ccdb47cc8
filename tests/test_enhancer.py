"""Enhancer: every input kind in and the same kind out, clear errors, threads, garbage checks."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from _support import tiny_model
from dermsr import Enhancer
from dermsr.backends import Backend, Capabilities, SessionBase, register, unregister
from dermsr.enhance import check_output
from dermsr.errors import BackendError, InputError, UnknownNameError
from dermsr.models import load_model


@pytest.fixture(scope="module")
def enh() -> Enhancer:
    return Enhancer(tiny_model())


@pytest.fixture(scope="module")
def ref(enh, isic_crop):
    """Float reference for the crop, straight through the PyTorch module."""
    x = torch.from_numpy(isic_crop.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.inference_mode():
        y = enh.model.to_torch()(x).clamp(0, 1).numpy()
    return y


def test_uint8_rgb(enh, isic_crop, ref):
    out = enh.enhance(isic_crop)
    assert out.dtype == np.uint8 and out.shape == (192, 256, 3)
    expected = np.rint(ref[0].transpose(1, 2, 0) * 255)
    assert np.abs(out.astype(np.float64) - expected).max() <= 1


def test_uint16_keeps_precision(enh, isic_crop, ref):
    img16 = isic_crop.astype(np.uint16) * 257  # same values on the 16-bit scale
    out = enh.enhance(img16)
    assert out.dtype == np.uint16 and out.shape == (192, 256, 3)
    expected = ref[0].transpose(1, 2, 0) * 65535
    assert np.abs(out - expected).max() <= 1.0  # not truncated to 8 bits
    assert len(np.unique(out)) > 256


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays(enh, isic_crop, ref, dtype):
    out = enh.enhance(isic_crop.astype(dtype) / 255)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref[0].transpose(1, 2, 0), atol=1e-5)


def test_grayscale_shapes(enh, isic_crop):
    gray = isic_crop[:, :, 1]
    out = enh.enhance(gray)
    assert out.shape == (192, 256) and out.dtype == np.uint8
    out1 = enh.enhance(gray[:, :, None])
    assert out1.shape == (192, 256, 1)
    np.testing.assert_array_equal(out1[:, :, 0], out)
    # grey goes through the model as three equal channels, averaged back
    rgb = enh.run(np.repeat(gray[None, None].astype(np.float32) / 255, 3, axis=1))
    np.testing.assert_array_equal(out, np.rint(rgb[0].mean(axis=0) * 255).astype(np.uint8))


def test_rgba_alpha_upscaled_separately(enh, isic_crop):
    alpha = np.full(isic_crop.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0
    rgba = np.dstack([isic_crop, alpha])
    out = enh.enhance(rgba)
    assert out.shape == (192, 256, 4)
    np.testing.assert_array_equal(out[..., :3], enh.enhance(isic_crop))
    assert (out[:, 44:, 3] == 255).all()  # opaque stays exactly opaque
    assert (out[:, :36, 3] == 0).all()


def test_torch_tensors(enh, isic_crop, ref):
    chw = torch.from_numpy(isic_crop.transpose(2, 0, 1).copy()).float() / 255
    out = enh.enhance(chw)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 192, 256) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref[0], atol=1e-5)
    batch = torch.stack([chw, chw.flip(-1)])
    outb = enh.enhance(batch)
    assert outb.shape == (2, 3, 192, 256)
    np.testing.assert_allclose(outb[0].numpy(), ref[0], atol=1e-5)
    u8 = enh.enhance(torch.from_numpy(isic_crop.transpose(2, 0, 1).copy()))
    assert u8.dtype == torch.uint8


def test_path_input(enh, tmp_path, isic_crop):
    from dermsr.io import write_image

    write_image(tmp_path / "a.png", isic_crop)
    np.testing.assert_array_equal(enh.enhance(tmp_path / "a.png"), enh.enhance(isic_crop))


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((5, 5, 2), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((2, 5, 5, 3), np.uint8), "shape"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), np.inf, np.float32), "NaN or infinity"),
        (np.full((4, 4, 3), 255.0, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 3), np.int32), "int32"),
        (np.zeros((4, 4, 3), bool), "bool"),
        ([[1, 2], [3, 4]], "list"),
        (torch.zeros(2, 3), "CHW"),
        (torch.zeros(1, 2, 4, 4), "channels"),
    ],
)
def test_bad_input_names_expected_and_got(enh, image, match):
    with pytest.raises(InputError, match=match):
        enh.enhance(image)


def test_scale_comes_from_model(isic_crop):
    e = Enhancer("realesr-animevideov3-x2")
    assert e.scale == 2
    assert e.enhance(isic_crop[:10, :12]).shape == (20, 24, 3)


def test_repeated_calls_bit_identical_and_thread_safe(enh, isic_crop):
    crops = [np.ascontiguousarray(isic_crop[i : i + 20, i : i + 24]) for i in range(6)]
    expected = [enh.enhance(c) for c in crops]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(enh.enhance, crops * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, expected[i % len(crops)])


def test_pickle_round_trip(enh, isic_crop):
    import pickle

    enh.enhance(isic_crop[:8, :8])  # session exists
    clone = pickle.loads(pickle.dumps(enh))
    np.testing.assert_array_equal(clone.enhance(isic_crop), enh.enhance(isic_crop))


class _GarbageBackend(Backend):
    name = "garbage-test"
    runtime_module = "numpy"
    value = np.nan

    def load(self, model, options):
        outer = self

        class S(SessionBase):
            backend = "garbage-test"
            capabilities = Capabilities(thread_safe=True)

            def run(self, x):
                n, c, h, w = x.shape
                return np.full((n, c, h * model.scale, w * model.scale), outer.value, np.float32)

        return S()


@pytest.mark.parametrize("value", [np.nan, 5.6e19, -40.0])
def test_runtime_garbage_is_caught_and_named(value):
    _GarbageBackend.value = value
    register(_GarbageBackend)
    try:
        e = Enhancer(tiny_model(), backend="garbage-test")
        with pytest.raises(BackendError, match="garbage-test"):
            e.enhance(np.zeros((4, 4, 3), np.uint8))
    finally:
        unregister("garbage-test")


def test_check_output_counts_bad_values_and_clamps_in_place():
    y = np.array([[-0.5, 0.25, 1.5, 16.9]], np.float32)
    assert check_output(y, "b") is y
    np.testing.assert_array_equal(y, np.clip(np.array([[-0.5, 0.25, 1.5, 16.9]], np.float32), 0, 1))
    for bad, count in ((np.array([0.5, np.nan, np.nan], np.float32), 2),
                       (np.array([np.inf, 0.5, -np.inf], np.float32), 2)):
        with pytest.raises(BackendError, match=rf"'b' returned {count} non-finite"):
            check_output(bad, "b")
    with pytest.raises(BackendError, match=r"\[-20, 0\.5\]"):
        check_output(np.array([-20.0, 0.5], np.float32), "b")


def test_output_never_aliases_and_clamps_the_input():
    """A runtime handing back the buffer it was given (a ×1 plugin, say) must not have the
    caller's array clamped in place."""
    e = Enhancer(tiny_model(), tile=None)
    e._run_session = lambda w: w  # type: ignore[method-assign]
    window = np.full((1, 3, 2, 2), 3.0, np.float32)
    out = e._run_checked(window)
    assert (window == 3.0).all() and (out == 1.0).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_photo_is_converted_tile_by_tile_exactly(dtype):
    """A uint8/uint16 RGB photo is written into its integer output tile by tile (no float32
    canvas): the result equals rounding the float output of run() by NumPy, and the NumPy
    memory traced during enhance stays below what the float canvas alone would take."""
    import tracemalloc

    top = np.iinfo(dtype).max
    img = np.random.default_rng(3).integers(0, top + 1, (72, 100, 3)).astype(dtype)
    e = Enhancer(tiny_model(), tile=16)
    assert len(e.tile_plan(72, 100)) > 1
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(top)
    # the documented conversion: round(value × max) in float32, as restore() has always done
    want = np.rint(e.run(x)[0].transpose(1, 2, 0) * np.float32(top)).astype(dtype)
    tracemalloc.start()
    try:
        got = e.enhance(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.dtype == dtype and got.shape == (288, 400, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    float_canvas = 3 * 288 * 400 * 4
    assert peak < float_canvas, (peak, float_canvas)


def test_regression_saturated_noise_overshoot_is_not_garbage():
    """Hypothesis counterexample (test_backends, kind='saturated', 15×22, seed=0): the released
    model legitimately overshoots past 2.0 on 0/1 noise; that must be clamped, not refused."""
    image = (np.random.default_rng(0).random((15, 22, 3)) < 0.5).astype(np.float32)
    enhancer = Enhancer("realesr-animevideov3-x4", backend="torch", tile=None)  # the released model
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
    with torch.inference_mode():
        raw = enhancer.model.to_torch()(torch.from_numpy(x)).numpy()
    assert raw.max() > 2.0  # the overshoot that an over-tight garbage bound refused
    out = enhancer.enhance(image)
    # atol: the channels-last CPU path sums in another order than the plain NCHW module
    np.testing.assert_allclose(out, np.clip(raw[0], 0, 1).transpose(1, 2, 0), atol=2e-5)


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UnknownNameError, match=r"torch.*Did you mean 'torch'"):
        Enhancer(backend="troch")


def test_half_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InputError, match="CUDA"):
        Enhancer(tiny_model(), backend="torch", half=True).enhance(np.zeros((4, 4, 3), np.uint8))


def test_import_dermsr_imports_no_runtime():
    code = (
        "import sys, dermsr, dermsr.backends, dermsr.models, dermsr.models.foreign, dermsr.enhance, dermsr.io\n"
        "dermsr.backends.available()\n"
        "heavy = [m for m in ('torch','ncnn','onnxruntime','executorch','lpips','matplotlib','spandrel')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("kw", [{"threads": True}, {"threads": 0}, {"tile": True}, {"tile_pad": False},
                                {"tile_pad": -1}, {"threads": 2.0}])
def test_bools_and_out_of_range_counts_are_refused(kw):
    """Regression: ``Enhancer(threads=True)`` was accepted as one thread (True is an int)."""
    name, value = next(iter(kw.items()))
    with pytest.raises(InputError, match=rf"{name} must be .*got {value!r}"):
        Enhancer(**kw)


#: Run in a subprocess where ``import torch`` fails, as on a base install (``pip install dermsr``).
NO_TORCH = "import sys\nsys.modules['torch'] = None\n"


@pytest.mark.parametrize("model", ["realesr-animevideov3-x4", "dermsr-isic-x4", "dermsr-blind-x4"])
def test_builtin_models_enhance_on_ncnn_without_torch(tmp_path, model):
    """The light install: built-in weights load and run on NCNN with torch unimportable (NCNN
    files written from the NumPy weights into an empty cache), and match PyTorch to ~1e-5."""
    pytest.importorskip("ncnn")
    x = np.random.default_rng(3).random((1, 3, 21, 26), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    code = NO_TORCH + (
        "import numpy as np\n"
        "from dermsr import Enhancer\n"
        f"e = Enhancer({model!r})\n"
        "assert e.backend_name == 'ncnn', e.backend_name\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, e.run(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "assert sys.modules['torch'] is None\n"
    )
    env = {**os.environ, "DERMSR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    with torch.inference_mode():
        ref = np.clip(load_model(model).to_torch()(torch.from_numpy(x)).numpy(), 0, 1)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=2e-5)


def test_missing_torch_names_the_extra(tmp_path):
    """Without torch, asking for it says which extra to install, in one line."""
    pth = tmp_path / "w.pth"
    torch.save(tiny_model().state_dict(), pth)
    code = NO_TORCH + (
        "from dermsr import Enhancer\n"
        "from dermsr.models import load_model\n"
        "for call in (lambda: Enhancer(backend='torch'), lambda: load_model(sys.argv[1]),\n"
        "             lambda: load_model().to_torch()):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(pth)], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 3, proc.stdout + proc.stderr
    assert all("pip install 'dermsr[torch]'" in line for line in lines), lines


def test_tile_progress_callback_and_bar(capsys):
    """progress= reports each tile of the plan (callable: (done, total); True: a tqdm bar on
    stderr, only when there is more than one tile); the output is unchanged by it."""
    enhancer = Enhancer(tiny_model(), tile=16)
    image = (np.random.default_rng(1).random((40, 33, 3)) * 255).astype(np.uint8)
    calls: list[tuple[int, int]] = []
    out = enhancer.enhance(image, progress=lambda done, total: calls.append((done, total)))
    n = len(enhancer.tile_plan(40, 33))
    assert n == 9 and calls == [(i, n) for i in range(1, n + 1)]
    np.testing.assert_array_equal(out, enhancer.enhance(image))
    x = image.transpose(2, 0, 1)[None].astype(np.float32) / 255
    calls.clear()
    enhancer.run(x, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (n, n)
    capsys.readouterr()
    enhancer.enhance(image, progress=True)
    assert f"tiles:   0%|          | 0/{n} " in capsys.readouterr().err  # tqdm: count, rate, ETA
    enhancer.enhance(image[:8, :8], progress=True)  # one tile: no bar
    assert capsys.readouterr().err == ""
    with pytest.raises(InputError, match="progress"):
        enhancer.enhance(image, progress="yes")


def test_default_backend_is_auto_resolved_without_an_enhancer():
    from dermsr.backends import AUTO_ORDER, available, resolve_backend

    installed = [a.name for a in available() if a.available]
    want = next(n for n in AUTO_ORDER if n in installed)
    assert resolve_backend() == resolve_backend("auto") == want
    assert Enhancer(tiny_model()).backend_name == want
    assert resolve_backend("torch") == "torch"
    with pytest.raises(UnknownNameError):
        resolve_backend("troch")
