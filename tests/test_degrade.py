"""dermsr.degrade: presets against independent references, determinism, dtypes, records, CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dermsr.cli import main
from dermsr.degrade import PRESETS, Degrader, ops, step_from_dict
from dermsr.degrade import steps as S
from dermsr.errors import InputError, UnknownNameError

SHARED = Path(os.environ.get("DERMSR_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared"))
REAL_IMAGE = SHARED / "data" / "dermoscopy" / "ISIC_0000271.jpg"  # 1024x768, a study image
DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def real_image_bgr() -> np.ndarray:
    if not REAL_IMAGE.exists():
        pytest.skip(f"shared data not found at {REAL_IMAGE} (set DERMSR_SHARED)")
    return cv2.imread(str(REAL_IMAGE), cv2.IMREAD_COLOR)


def random_image(rng: np.random.Generator, h: int, w: int, channels: int | None, dtype) -> np.ndarray:
    shape = (h, w) if channels is None else (h, w, channels)
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)
    return rng.random(shape).astype(dtype)


# --------------------------------------------------------------------------- thesis


def test_thesis_matches_direct_opencv_on_a_study_image():
    bgr = real_image_bgr()
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    # independent computation, written out with OpenCV calls as a study script would
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = rgb[top:top + side, left:left + side]
    x = cv2.GaussianBlur(crop, (3, 3), 0)
    x = cv2.resize(x, (side // 2, side // 2), interpolation=cv2.INTER_LINEAR)
    x = cv2.resize(x, (side, side), interpolation=cv2.INTER_LINEAR)
    x = cv2.resize(x, (224, 224), interpolation=cv2.INTER_AREA)
    expected = (x.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]

    res = Degrader.preset("thesis").apply(rgb, seed=0)
    assert res.lr.shape == (1, 3, 224, 224) and res.lr.dtype == np.float32
    assert np.array_equal(res.hr, crop)
    assert np.allclose(res.lr, expected, rtol=0, atol=1e-7)


def test_thesis_parameters_change_the_result_as_documented():
    rgb = cv2.cvtColor(real_image_bgr(), cv2.COLOR_BGR2RGB)[:400, :500]
    crop = rgb[:, 50:450]
    x = cv2.GaussianBlur(crop, (3, 3), 0.8)
    x = cv2.resize(x, (200, 200), interpolation=cv2.INTER_LINEAR)
    x = cv2.resize(x, (400, 400), interpolation=cv2.INTER_LINEAR)
    x = cv2.resize(x, (224, 224), interpolation=cv2.INTER_CUBIC)
    expected = (x.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    d = Degrader.preset("thesis", blur_sigma=0.8, final_interpolation="bicubic")
    assert np.allclose(d(rgb), expected, rtol=0, atol=1e-7)
    assert d.label == "thesis(blur_sigma=0.8, final_interpolation='bicubic')"
    assert not np.array_equal(d(rgb), Degrader.preset("thesis")(rgb))


def test_thesis_output_range_shape_and_determinism():
    img = random_image(np.random.default_rng(1), 97, 131, 3, np.uint8)
    d = Degrader.preset("thesis")
    a, b = d(img), d(img, seed=5)
    assert a.shape == (1, 3, 224, 224) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.tobytes() == b.tobytes()  # no randomness in the thesis pipeline
    res = d.apply(img)
    assert res.hr.shape == (97, 97, 3) and np.array_equal(res.hr, img[:, 17:114])


def test_opencv_sigma_zero_is_the_binomial_kernel_not_sigma_0_8():
    rng = np.random.default_rng(0)
    img = rng.random((9, 11, 3))
    # [1, 2, 1] / 4 separable, mirrored borders (numpy "reflect" == OpenCV REFLECT_101)
    p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    rows = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    expected = 0.25 * rows[:, :-2] + 0.5 * rows[:, 1:-1] + 0.25 * rows[:, 2:]
    out = S.GaussianBlur(3, 0.0)(img)[0]
    assert np.allclose(out, expected, atol=1e-12)
    assert np.allclose(out, S.GaussianBlur(3, 1 / math.sqrt(2 * math.log(2)))(img)[0], atol=1e-12)
    assert np.abs(out - S.GaussianBlur(3, 0.8)(img)[0]).max() > 1e-3


# --------------------------------------------------------------------------- bicubic-x4


def test_bicubic_x4_alignment_and_agreement_with_torch_antialias():
    torch = pytest.importorskip("torch")
    img = random_image(np.random.default_rng(2), 71, 58, 3, np.float64)
    res = Degrader.preset("bicubic-x4").apply(img)
    assert res.hr.shape == (68, 56, 3) and np.array_equal(res.hr, img[:68, :56])
    assert res.lr.shape == (17, 14, 3) and res.lr.dtype == np.float64
    t = torch.from_numpy(res.hr).permute(2, 0, 1)[None]
    ref = torch.nn.functional.interpolate(t, size=(17, 14), mode="bicubic", antialias=True,
                                          align_corners=False)[0].permute(1, 2, 0).numpy()
    # MATLAB mirrors at the borders while PyTorch renormalises a clipped kernel: compare the
    # interior, whose 16-tap kernels lie inside the image
    assert np.abs(res.lr - np.clip(ref, 0, 1))[2:-2, 2:-2].max() < 1e-12


def test_matlab_bicubic_preserves_linear_ramps():
    # a normalised symmetric kernel reproduces a linear function: output pixel i of a ÷4
    # resize samples the input at (i + 0.5) * 4 - 0.5 (0-based)
    n = 64
    ramp = np.tile(np.linspace(0, 1, n), (8, 1))
    out = ops.imresize_matlab(ramp, (2, n // 4))
    centers = (np.arange(n // 4) + 0.5) * 4 - 0.5
    assert np.allclose(out[0, 2:-2], (centers / (n - 1))[2:-2], atol=1e-12)
    up = ops.imresize_matlab(ramp, (16, 2 * n))  # ×2 upscale, no antialiasing
    assert np.allclose(up[0, 4:-4], (((np.arange(2 * n) + 0.5) / 2 - 0.5) / (n - 1))[4:-4], atol=1e-12)


def test_bicubic_x4_uint8_is_the_rounded_float_result():
    img = random_image(np.random.default_rng(3), 40, 36, 3, np.uint8)
    lr8 = Degrader.preset("bicubic-x4")(img)
    lrf = Degrader.preset("bicubic-x4")(img.astype(np.float64) / 255)
    assert lr8.dtype == np.uint8 and lr8.shape == (10, 9, 3)
    assert np.array_equal(lr8, np.floor(np.clip(lrf, 0, 1) * 255 + 0.5).astype(np.uint8))


# --------------------------------------------------------------------------- realistic


def test_realistic_same_seed_same_bytes_different_seed_differs():
    img = random_image(np.random.default_rng(4), 64, 48, 3, np.uint8)
    d = Degrader.preset("realistic")
    a, b, c = d.apply(img, seed=7), d.apply(img, seed=7), d.apply(img, seed=8)
    assert a.lr.tobytes() == b.lr.tobytes() and a.record == b.record
    assert a.lr.shape == (16, 12, 3) and a.lr.dtype == np.uint8 and a.hr.shape == (64, 48, 3)
    assert a.lr.tobytes() != c.lr.tobytes()
    assert json.loads(json.dumps(a.record)) == a.record


def test_realistic_record_reproduces_the_result():
    img = random_image(np.random.default_rng(5), 40, 44, 3, np.uint16)
    res = Degrader.preset("realistic").apply(img)  # seed drawn from the OS, then recorded
    rec = json.loads(json.dumps(res.record))
    again = Degrader.from_dict(rec["degrader"]).apply(img, seed=rec["seed"])
    assert again.lr.tobytes() == res.lr.tobytes() and again.lr.dtype == np.uint16
    kinds = [s["type"] for s in rec["steps"]]
    assert kinds[0] == "CropToMultiple" and kinds.count("RandomJPEG") == 1
    jpeg_draws = [s["quality"] for s in rec["steps"] if s["type"] == "RandomJPEG"]
    assert all(30 <= q <= 95 for q in jpeg_draws)


def test_realistic_accepts_a_generator():
    img = random_image(np.random.default_rng(6), 32, 32, None, np.float32)
    d = Degrader.preset("realistic")
    a = d.apply(img, seed=np.random.default_rng(11))
    b = d.apply(img, seed=np.random.default_rng(11))
    assert a.record["seed"] is None and a.lr.tobytes() == b.lr.tobytes() and a.lr.shape == (8, 8)


def test_random_blur_kernel_is_the_gaussian_opencv_describes():
    k = ops.gaussian_kernel(7, 1.3)
    g = cv2.getGaussianKernel(7, 1.3, cv2.CV_64F)
    assert np.allclose(k, g @ g.T, atol=1e-15)
    aniso = ops.gaussian_kernel(9, 2.0, 0.5, theta=0.0)
    gx, gy = cv2.getGaussianKernel(9, 2.0, cv2.CV_64F), cv2.getGaussianKernel(9, 0.5, cv2.CV_64F)
    assert np.allclose(aniso, gy @ gx.T, atol=1e-15)  # rows vary with y (σ=0.5), columns with x
    assert np.allclose(ops.gaussian_kernel(9, 2.0, 0.5, theta=math.pi / 2), gx @ gy.T, atol=1e-12)


def test_jpeg_is_a_real_jpeg():
    img = random_image(np.random.default_rng(7), 24, 32, 3, np.uint8)
    _, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(ops.jpeg(img, 40), expected)


def test_poisson_noise_follows_realesrgan_formula():
    # noise = Poisson(x * vals) / vals - x with x quantised to 8 bits and vals the number of
    # distinct levels rounded up to a power of two: here 2 levels -> vals = 2, so the output
    # x + noise = N / 2 with N ~ Poisson(2x), clipped to [0, 1]
    x = np.full((201, 201), 128 / 255)
    x[0, 0] = 0.0
    out = ops.add_poisson_noise(x, 1.0, np.random.default_rng(0))[1:, 1:]
    assert set(np.unique(out).tolist()) <= {0.0, 0.5, 1.0}
    lam = 2 * 128 / 255
    p0, p1 = math.exp(-lam), lam * math.exp(-lam)
    assert abs((out == 0).mean() - p0) < 0.01 and abs((out == 0.5).mean() - p1) < 0.01


# --------------------------------------------------------------------------- dtypes and layouts

STEP_EXAMPLES = [
    S.CenterCrop(),
    S.CropToMultiple(2),
    S.GaussianBlur(3, 0.0),
    S.GaussianBlur(5, 1.5),
    S.Resize(scale=0.5, interpolation="bilinear"),
    S.Resize(size=(7, 5), interpolation="bicubic"),
    S.Resize(size=(3, 4), interpolation="bicubic-matlab"),
    S.Resize(scale=1.7, interpolation="lanczos"),
    S.Resize(scale=0.6, interpolation="nearest"),
    S.JPEG(50),
    S.GaussianNoise(20.0, gray=True),
    S.PoissonNoise(2.0),
    S.RandomBlur(),
    S.RandomResize(),
    S.RandomNoise(gray_prob=0.5),
    S.RandomJPEG(),
]
PHOTOMETRIC = (S.GaussianBlur, S.JPEG, S.GaussianNoise, S.PoissonNoise, S.RandomBlur, S.RandomNoise)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), step=st.sampled_from(STEP_EXAMPLES), dtype=st.sampled_from(DTYPES),
       channels=st.sampled_from([None, 1, 3, 4]), seed=st.integers(0, 2**32 - 1))
def test_steps_preserve_dtype_and_layout(data, step, dtype, channels, seed):
    h, w = data.draw(st.integers(4, 12)), data.draw(st.integers(4, 12))
    img = random_image(np.random.default_rng(seed), h, w, channels, dtype)
    out, info = step(img, rng=np.random.default_rng(seed), hr_hw=(h, w))
    assert out.dtype == img.dtype and out.ndim == img.ndim
    assert out.shape[2:] == img.shape[2:]
    json.dumps(info)
    if out.dtype.kind == "f":
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if channels == 4 and isinstance(step, PHOTOMETRIC):
        assert np.array_equal(out[:, :, 3], img[:, :, 3])  # alpha passes through


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", [s for s in STEP_EXAMPLES if isinstance(s, PHOTOMETRIC)], ids=repr)
def test_photometric_steps_carry_alpha_unchanged(step, dtype):
    rng = np.random.default_rng(14)
    img = random_image(rng, 9, 10, 4, dtype)
    out, _ = step(img, rng=rng, hr_hw=(9, 10))
    assert out.dtype == img.dtype and out.shape == img.shape
    assert np.array_equal(out[:, :, 3], img[:, :, 3])
    assert not np.array_equal(out[:, :, :3], img[:, :, :3])  # the colour did change


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["bicubic-x4", "realistic"]), dtype=st.sampled_from(DTYPES),
       channels=st.sampled_from([None, 3]), h=st.integers(8, 24), w=st.integers(8, 24),
       seed=st.integers(0, 2**32 - 1))
def test_presets_preserve_dtype_and_give_hr_over_4(name, dtype, channels, h, w, seed):
    img = random_image(np.random.default_rng(seed), h, w, channels, dtype)
    res = Degrader.preset(name).apply(img, seed=seed)
    assert res.lr.dtype == img.dtype and res.hr.dtype == img.dtype
    assert res.hr.shape == (h - h % 4, w - w % 4, *img.shape[2:])
    assert res.lr.shape == (h // 4, w // 4, *img.shape[2:])


def test_rgba_alpha_is_carried_and_thesis_drops_only_opaque_alpha():
    rng = np.random.default_rng(8)
    rgb = random_image(rng, 40, 36, 3, np.uint8)
    rgba = np.concatenate([rgb, np.full((40, 36, 1), 255, np.uint8)], axis=2)
    thesis = Degrader.preset("thesis")
    assert np.array_equal(thesis(rgba), thesis(rgb))
    translucent = rgba.copy()
    translucent[20, 18, 3] = 10
    with pytest.raises(InputError, match="translucent alpha"):
        thesis(translucent)
    lr = Degrader.preset("realistic")(rgba, seed=1)
    assert lr.shape == (10, 9, 4) and (lr[:, :, 3] == 255).all()


def test_grey_images():
    grey = random_image(np.random.default_rng(9), 30, 40, None, np.uint16)
    t = Degrader.preset("thesis")(grey)
    assert t.shape == (1, 3, 224, 224) and np.array_equal(t[0, 0], t[0, 2])
    assert Degrader.preset("realistic")(grey, seed=0).shape == (7, 10)


# --------------------------------------------------------------------------- serialisation


def _steps_strategy():
    prob = st.floats(0, 1)
    pair = st.tuples(st.floats(0.01, 5), st.floats(0.01, 5)).map(sorted).map(tuple)
    odd = st.integers(0, 10).map(lambda k: 2 * k + 1)
    interp = st.sampled_from(sorted(ops.INTERPOLATIONS))
    probs3 = st.tuples(prob, prob, prob).filter(lambda p: sum(p) > 0).map(
        lambda p: (p[0] / sum(p), p[1] / sum(p), 1.0 - p[0] / sum(p) - p[1] / sum(p))).filter(
        lambda p: min(p) >= 0)
    ops_ = st.one_of(
        st.builds(S.GaussianBlur, odd, st.floats(0, 10)),
        st.builds(S.Resize, size=st.tuples(st.integers(1, 999), st.integers(1, 999)), interpolation=interp),
        st.builds(S.Resize, scale=st.floats(0.01, 8), interpolation=interp,
                  relative_to=st.sampled_from(["current", "hr"])),
        st.builds(S.JPEG, st.integers(1, 100)),
        st.builds(S.GaussianNoise, st.floats(0, 50), st.booleans()),
        st.builds(S.PoissonNoise, st.floats(0, 5), st.booleans()),
        st.builds(S.RandomBlur, prob, st.lists(odd, min_size=1, max_size=4).map(tuple), pair, prob),
        st.builds(S.RandomResize, probs3,
                  st.tuples(st.floats(0.01, 1), st.floats(1, 4)),
                  st.lists(interp, min_size=1, max_size=3).map(tuple),
                  st.sampled_from(["current", "hr"]), st.floats(0.01, 4)),
        st.builds(S.RandomNoise, prob, pair, pair, prob),
        st.builds(S.RandomJPEG, st.tuples(st.integers(1, 50), st.integers(50, 100))),
    )
    nested = st.lists(ops_, max_size=3).map(lambda s: S.RandomOrder(tuple(s)))
    crops = st.lists(st.one_of(st.builds(S.CenterCrop, st.none() | st.integers(1, 512)),
                               st.builds(S.CropToMultiple, st.integers(1, 8))), max_size=2)
    body = st.lists(st.one_of(ops_, nested), max_size=5)
    tail = st.lists(st.just(S.ToNCHW()), max_size=1)
    return st.tuples(crops, body, tail).map(lambda t: t[0] + t[1] + t[2])


@settings(max_examples=40, deadline=None)
@given(steps=_steps_strategy(), work=st.sampled_from([None, "float32", "float64"]),
       label=st.none() | st.text(max_size=12))
def test_to_dict_from_dict_round_trips_exactly(steps, work, label):
    d = Degrader(steps, work_dtype=work, label=label)
    text = json.dumps(d.to_dict())
    back = Degrader.from_dict(json.loads(text))
    assert back == d and json.dumps(back.to_dict()) == text and repr(back) == repr(d)


def test_presets_round_trip_and_repr():
    assert sorted(PRESETS) == ["bicubic-x4", "phone", "realistic", "thesis"]
    for name in PRESETS:
        d = Degrader.preset(name)
        assert Degrader.from_dict(json.loads(json.dumps(d.to_dict()))) == d
        assert repr(d).startswith(f"Degrader(label='{name}'")
    assert "GaussianBlur(ksize=3, sigma=0.0)" in repr(Degrader.preset("thesis"))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((5, 5, 2), np.uint8), r"expected \(H, W\) grey or \(H, W, C\)"),
    (np.zeros((5, 5, 5), np.uint8), r"expected \(H, W\) grey or \(H, W, C\)"),
    (np.zeros((1, 5, 5, 3), np.uint8), r"expected \(H, W\) grey"),
    (np.full((5, 5, 3), np.nan, np.float32), "NaN or infinity"),
    (np.full((5, 5), np.inf), "NaN or infinity"),
    (np.zeros((5, 5, 3), np.int32), "dtype int32; expected uint8, uint16, float32 or float64"),
    (np.zeros((5, 5, 3), np.float16), "dtype float16"),
    (np.zeros((5, 5, 3), bool), "dtype bool"),
    (np.full((5, 5, 3), 255.0, np.float32), r"values in \[255, 255\]; expected \[0, 1\]"),
    (np.full((5, 5, 3), -0.5), r"expected \[0, 1\]"),
    ([[0, 1], [1, 0]], "must be a NumPy array"),
])
def test_bad_images_are_refused_clearly(image, message):
    for name in PRESETS:
        with pytest.raises(InputError, match=message):
            Degrader.preset(name)(image)


def test_bad_configs_and_names():
    with pytest.raises(InputError, match="odd"):
        S.GaussianBlur(4)
    with pytest.raises(InputError, match="exactly one of size or scale"):
        S.Resize()
    with pytest.raises(InputError, match="interpolation must be one of"):
        S.Resize(scale=2, interpolation="cubic")
    with pytest.raises(InputError, match="sum to 1"):
        S.RandomResize(updown_probs=(0.5, 0.5, 0.5))
    with pytest.raises(InputError, match=r"JPEG\.quality"):
        S.JPEG(101)
    with pytest.raises(UnknownNameError, match="did you mean 'thesis'"):
        Degrader.preset("thesys")
    with pytest.raises(InputError, match="no parameter"):
        Degrader.preset("thesis", sigma=1)
    with pytest.raises(InputError, match="must come before"):
        Degrader([S.GaussianBlur(), S.CenterCrop()])
    with pytest.raises(InputError, match="last step"):
        Degrader([S.ToNCHW(), S.GaussianBlur()])
    with pytest.raises(UnknownNameError, match="unknown degradation step 'Sharpen'"):
        step_from_dict({"type": "Sharpen"})
    with pytest.raises(InputError, match="no field"):
        step_from_dict({"type": "JPEG", "quality": 50, "q": 1})
    with pytest.raises(InputError, match="seed must be"):
        Degrader.preset("realistic")(np.zeros((8, 8), np.uint8), seed=-1)
    with pytest.raises(InputError, match="at least 4x4"):
        Degrader.preset("bicubic-x4")(np.zeros((3, 9), np.uint8))
    with pytest.raises(InputError, match="draws random values"):
        S.RandomJPEG()(np.zeros((8, 8), np.uint8))


def test_import_pulls_in_no_runtime():
    code = "import sys, dermsr.degrade; print(sorted(m for m in ('torch', 'onnxruntime', 'ncnn', 'executorch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- CLI


def test_cli_writes_images_and_a_reproducing_sidecar(tmp_path):
    from dermsr.io import read_image, write_image

    src = tmp_path / "in"
    rng = np.random.default_rng(10)
    write_image(src / "a16.png", random_image(rng, 37, 50, 3, np.uint16))
    write_image(src / "g8.png", random_image(rng, 20, 24, None, np.uint8))
    out = tmp_path / "out"
    assert main(["degrade", str(src), "-o", str(out), "--preset", "realistic", "--seed", "3", "--hr"]) == 0
    lr = read_image(out / "a16_realistic.png")
    assert lr.dtype == np.uint16 and lr.shape == (9, 12, 3)
    assert read_image(out / "g8_realistic.png").shape == (5, 6)
    side = json.loads((out / "a16_realistic.json").read_text())
    assert side["base_seed"] == 3 and side["lr_file"] == "a16_realistic.png"
    again = Degrader.from_dict(side["degrader"]).apply(read_image(src / "a16.png"), seed=side["seed"])
    assert np.array_equal(again.lr, lr) and np.array_equal(read_image(out / "a16_realistic_hr.png"), again.hr)
    before = (out / "a16_realistic.png").stat().st_mtime_ns
    assert main(["degrade", str(src), "-o", str(out), "--preset", "realistic", "--quiet"]) == 0
    assert (out / "a16_realistic.png").stat().st_mtime_ns == before  # skipped, not redone


def test_cli_thesis_writes_8bit_224_and_never_overwrites_inputs(tmp_path):
    from dermsr.io import read_image, write_image

    img = random_image(np.random.default_rng(12), 60, 80, 3, np.uint16)
    write_image(tmp_path / "x.png", img)
    victim = random_image(np.random.default_rng(13), 8, 8, 3, np.uint8)
    write_image(tmp_path / "x_thesis.png", victim)  # where x.png's output would go
    rc = main(["degrade", str(tmp_path / "x.png"), str(tmp_path / "x_thesis.png"), "-o", str(tmp_path),
               "--overwrite", "--set", "blur_sigma=0.8"])
    assert rc == 1  # x.png failed: its output would replace an input file
    assert np.array_equal(read_image(tmp_path / "x_thesis.png"), victim)
    out = read_image(tmp_path / "x_thesis_thesis.png")
    # the PNG holds the uint8 224x224 image that the float NCHW output was made from
    before_nchw = Degrader(Degrader.preset("thesis", blur_sigma=0.8).steps[:-1])(victim)
    assert out.dtype == np.uint8 and out.shape == (224, 224, 3)
    assert np.array_equal(out, before_nchw)


def test_cli_lists_degrade_and_rejects_bad_set(tmp_path, capsys):
    from dermsr.cli import SUBCOMMANDS
    from dermsr.cli.degrade import PRESET_NAMES

    assert SUBCOMMANDS.index("degrade") == SUBCOMMANDS.index("enhance") + 1
    assert tuple(PRESETS) == PRESET_NAMES
    assert main(["degrade", str(tmp_path), "-o", str(tmp_path / "o"), "--set", "oops"]) == 2
    assert "--set expects NAME=VALUE" in capsys.readouterr().err


# --------------------------------------------------------------------------- phone


def test_phone_is_seeded_and_quarter_size():
    img = random_image(np.random.default_rng(0), 96, 132, 3, np.uint8)
    d = Degrader.preset("phone")
    a, b, c = d.apply(img, seed=5), d.apply(img, seed=5), d.apply(img, seed=6)
    assert a.lr.shape == (24, 33, 3) and a.lr.dtype == np.uint8 and a.hr.shape == (96, 132, 3)
    assert a.lr.tobytes() == b.lr.tobytes() and a.lr.tobytes() != c.lr.tobytes()
    again = Degrader.from_dict(a.record["degrader"]).apply(img, seed=a.record["seed"])
    assert again.lr.tobytes() == a.lr.tobytes()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_phone_draws_stay_in_the_documented_ranges(seed):
    res = Degrader.preset("phone").apply(np.full((32, 32, 3), 128, np.uint8), seed=seed)
    blur, down, noise, jpg = res.record["steps"][1:]
    assert blur["applied"] and blur["ksize"] in (7, 9, 11, 13)
    assert 0.2 <= blur["sigma_x"] <= 2.0 and 0.2 <= blur["sigma_y"] <= 2.0
    assert down["mode"] in ("area", "bilinear", "bicubic") and down["size"] == [8, 8]
    if noise["noise"] == "gaussian":
        assert 0.5 <= noise["sigma"] <= 4.0
    else:
        assert 0.05 <= noise["scale"] <= 0.35
    assert 60 <= jpg["quality"] <= 90


def test_phone_noise_level_matches_its_parameter_and_chroma_is_subsampled():
    """On flat grey, with JPEG at quality 100 and Gaussian noise forced: grey (luma) noise comes
    out at the drawn sigma (blur and resize keep a flat image flat; 8-bit rounding adds 1/12
    in variance). Colour noise comes out weaker: 4:2:0 chroma subsampling averages the chroma
    part of the noise over 2×2 pixels, as a phone's JPEG does."""
    def lr_std(gray_prob):
        d = Degrader.preset("phone", gaussian_noise_prob=1.0, noise_sigma=(3.0, 3.0),
                            jpeg_quality=(100, 100), gray_noise_prob=gray_prob)
        lr = d(np.full((1024, 1024, 3), 128, np.uint8), seed=0).astype(np.float64)
        assert abs(lr.mean() - 128) < 0.1
        return lr.std()

    assert math.isclose(lr_std(1.0), math.sqrt(9 + 1 / 12), rel_tol=0.03)
    assert lr_std(0.0) < 0.8 * math.sqrt(9 + 1 / 12)


def test_phone_jpeg_leaves_block_edges_that_bicubic_x4_does_not():
    """The 8×8 JPEG grid shows as larger jumps across block borders than inside blocks."""
    img = real_image_bgr()[:, :, ::-1].copy()

    def block_ratio(lr):
        g = lr.astype(np.float64).mean(axis=2)
        dx = np.abs(np.diff(g, axis=1))
        at_border = dx[:, 7::8].mean()
        inside = np.delete(dx, np.s_[7::8], axis=1).mean()
        return at_border / inside

    phone = Degrader.preset("phone", jpeg_quality=(60, 60))(img, seed=1)
    clean = Degrader.preset("bicubic-x4")(img)
    assert block_ratio(phone) > 1.1 > block_ratio(clean)
