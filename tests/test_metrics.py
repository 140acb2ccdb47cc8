"""Metrics against independent references: scikit-image, a BasicSR-convention implementation
written here with OpenCV, SciPy's uniform filter (MATLAB downsampling), OpenCV's Laplacian,
and the LPIPS authors' published distances."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import rgb2ycbcr
from skimage.metrics import mean_squared_error as sk_mse
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from dermsr.errors import CheckpointError, InputError, UnknownNameError, WeightsNotFoundError
from dermsr.evaluate import (
    LPIPS,
    MSE,
    PSNR,
    SSIM,
    Evaluator,
    Sharpness,
    lpips_distance,
    mse,
    psnr,
    rgb_to_y,
    sharpness,
    ssim,
)
from dermsr.evaluate import lpips as lpips_mod
from dermsr.evaluate.metrics import matlab_downsample, matlab_downsample_factor

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DERMSR_SHARED", REPO.parent / "shared"))
BACKBONE = SHARED / "weights" / "lpips_alexnet_features.pth"
LPIPS_DATA = SHARED / "testdata" / "lpips"
needs_backbone = pytest.mark.skipif(not BACKBONE.is_file(), reason=f"no LPIPS backbone at {BACKBONE}")

TOL = 1e-6


def sk_ssim_ref(a, b, data_range):
    """scikit-image configured as Wang et al. 2004 (its 3.5σ truncation gives the 11×11 window)."""
    return sk_ssim(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=data_range, channel_axis=-1 if a.ndim == 3 else None,
    )


def sample_pair(h=48, w=40, seed=0, noise=12.0):
    """A crop of a real dermoscopic image and a blurred, noisy version of it (uint8 RGB)."""
    from dermsr.data import sample_images
    from dermsr.io import read_image

    img = read_image(sample_images()[2])
    y0, x0 = 300 + seed * 7, 400 + seed * 5
    ref = np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(ref, (5, 5), 1.0).astype(np.float64)
    test = np.clip(np.rint(blurred + rng.normal(0, noise, ref.shape)), 0, 255).astype(np.uint8)
    return ref, test


# --- BasicSR convention, written independently: BGR images on 0-255, cv2 filtering ----------
def _bsr_y(img_bgr):
    img = img_bgr.astype(np.float32) / 255.0
    y = img @ np.array([24.966, 128.553, 65.481], np.float32) + 16.0  # BGR order
    return (y / 255.0 * 255.0)[..., None]


def basicsr_psnr(img, img2, crop_border, test_y_channel):
    if crop_border:
        img, img2 = img[crop_border:-crop_border, crop_border:-crop_border], img2[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img, img2 = _bsr_y(img), _bsr_y(img2)
    img, img2 = img.astype(np.float64), img2.astype(np.float64)
    err = np.mean((img - img2) ** 2)
    return float("inf") if err == 0 else 10.0 * np.log10(255.0**2 / err)


def basicsr_ssim(img, img2, crop_border, test_y_channel):
    if crop_border:
        img, img2 = img[crop_border:-crop_border, crop_border:-crop_border], img2[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img, img2 = _bsr_y(img), _bsr_y(img2)
    img, img2 = img.astype(np.float64), img2.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = k @ k.T
    vals = []
    for ch in range(img.shape[2]):
        x, y = img[..., ch], img2[..., ch]
        f = lambda z: cv2.filter2D(z, -1, win)[5:-5, 5:-5]  # noqa: E731
        mx, my = f(x), f(y)
        sx, sy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sx + sy + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


# --- SSIM ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(11, 11, 3), (48, 40, 3), (23, 57, 3)])
def test_ssim_matches_skimage_uint8(shape):
    ref, test = sample_pair(shape[0], shape[1])
    assert abs(ssim(ref, test) - sk_ssim_ref(ref, test, 255)) <= TOL


def test_ssim_matches_skimage_grey_float_and_uint16():
    ref, test = sample_pair(40, 36, seed=1)
    g_ref, g_test = ref[..., 1], test[..., 1]
    assert abs(ssim(g_ref, g_test) - sk_ssim_ref(g_ref, g_test, 255)) <= TOL
    f_ref, f_test = ref / 255.0, test / 255.0
    assert abs(ssim(f_ref, f_test) - sk_ssim_ref(f_ref, f_test, 1.0)) <= TOL
    u_ref, u_test = ref.astype(np.uint16) * 257, test.astype(np.uint16) * 257
    assert abs(ssim(u_ref, u_test) - sk_ssim_ref(u_ref, u_test, 65535)) <= TOL
    # the same content on three scales gives the same SSIM
    assert ssim(f_ref, f_test) == pytest.approx(ssim(ref, test), abs=1e-12)
    assert ssim(u_ref, u_test) == pytest.approx(ssim(ref, test), abs=1e-12)


def test_ssim_explicit_data_range_matches_skimage():
    ref, test = sample_pair(32, 32, seed=2)
    f_ref, f_test = ref.astype(np.float64), test.astype(np.float64)  # floats on 0-255
    assert abs(ssim(f_ref, f_test, data_range=255) - sk_ssim_ref(f_ref, f_test, 255)) <= TOL
    with pytest.raises(InputError, match=r"expected in \[0, 1\]"):
        ssim(f_ref, f_test)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(11, 30), w=st.integers(11, 30), c=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16), noise=st.floats(0.0, 80.0),
)
def test_ssim_property_matches_skimage(h, w, c, seed, noise):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
    if c == 1:
        a, b = a[..., 0], b[..., 0]
    ours = ssim(a, b)
    assert abs(ours - sk_ssim_ref(a, b, 255)) <= TOL
    assert ours == pytest.approx(ssim(b, a), abs=1e-12)  # symmetric
    assert ours <= 1.0 + 1e-12


def test_ssim_identical_is_one_and_inverted_is_low():
    ref, _ = sample_pair(32, 32)
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    assert ssim(ref, 255 - ref) < 0.5


def test_ssim_too_small_and_after_crop():
    a = np.zeros((10, 20), np.uint8)
    with pytest.raises(InputError, match=r"at least 11×11.*got 10×20"):
        ssim(a, a)
    b = np.zeros((20, 20), np.uint8)
    with pytest.raises(InputError, match=r"got 10×10 after cropping"):
        ssim(b, b, crop_border=5)


# --- BasicSR conventions ------------------------------------------------------------------------
@pytest.mark.parametrize("crop_border", [0, 4])
@pytest.mark.parametrize("y_channel", [False, True])
def test_psnr_ssim_match_basicsr_convention(crop_border, y_channel):
    ref, test = sample_pair(56, 48, seed=3)
    bgr_ref, bgr_test = ref[..., ::-1], test[..., ::-1]  # BasicSR holds OpenCV's BGR order
    want_p = basicsr_psnr(bgr_ref, bgr_test, crop_border, y_channel)
    want_s = basicsr_ssim(bgr_ref, bgr_test, crop_border, y_channel)
    # BasicSR's Y is float32; ours float64: they agree to float32 precision
    tol_p, tol_s = (1e-4, 1e-6) if y_channel else (1e-10, 1e-10)
    assert abs(psnr(ref, test, crop_border=crop_border, y_channel=y_channel) - want_p) <= tol_p
    assert abs(ssim(ref, test, crop_border=crop_border, y_channel=y_channel) - want_s) <= tol_s
    # PSNR class holds the same options
    assert PSNR(crop_border=crop_border, y_channel=y_channel)(ref, test) == psnr(
        ref, test, crop_border=crop_border, y_channel=y_channel
    )


def test_rgb_to_y_matches_skimage_rgb2ycbcr():
    ref, _ = sample_pair(20, 20)
    want = rgb2ycbcr(ref)[..., 0]  # scikit-image: Y = 16 + 65.481 R + 128.553 G + 24.966 B
    np.testing.assert_allclose(rgb_to_y(ref.astype(np.float64), 255.0)[..., 0], want, atol=1e-10)
    np.testing.assert_allclose(rgb_to_y(ref / 255.0, 1.0)[..., 0] * 255.0, want, atol=1e-10)
    rounded = rgb_to_y(ref.astype(np.float64), 255.0, round_y=True)[..., 0]
    np.testing.assert_array_equal(rounded, np.floor(want + 0.5))
    assert np.all(rounded == np.round(rounded))


def test_y_channel_on_grey_is_a_no_op_and_round_y_changes_result():
    ref, test = sample_pair(32, 32, seed=4)
    g, gt = ref[..., 0], test[..., 0]
    assert psnr(g, gt, y_channel=True) == psnr(g, gt)
    # rounding Y: the same as comparing MATLAB-style uint8 Y planes
    y_ref = np.floor(rgb2ycbcr(ref)[..., 0] + 0.5).astype(np.uint8)
    y_test = np.floor(rgb2ycbcr(test)[..., 0] + 0.5).astype(np.uint8)
    assert psnr(ref, test, y_channel=True, round_y=True) == pytest.approx(psnr(y_ref, y_test), abs=1e-9)
    assert abs(ssim(ref, test, y_channel=True, round_y=True) - sk_ssim_ref(y_ref, y_test, 255)) <= TOL


# --- MATLAB downsampling ------------------------------------------------------------------------
def test_matlab_factor_uses_matlab_rounding():
    assert matlab_downsample_factor(640, 1000) == 3  # 2.5 rounds away from zero, as in MATLAB
    assert matlab_downsample_factor(100, 5000) == 1
    assert matlab_downsample_factor(512, 896) == 2


@pytest.mark.parametrize("f", [2, 3, 4])
@pytest.mark.parametrize("shape", [(17, 23), (24, 24)])
def test_matlab_downsample_matches_scipy_uniform_filter(f, shape):
    from scipy.ndimage import uniform_filter

    x = np.random.default_rng(f).random(shape)
    # MATLAB imfilter(..., 'symmetric', 'same') is SciPy's mode='reflect'; MATLAB anchors an
    # even kernel one step to the left of SciPy's default, hence origin=-1 for even sizes.
    want = uniform_filter(x, size=f, mode="reflect", origin=-1 if f % 2 == 0 else 0)[::f, ::f]
    np.testing.assert_allclose(matlab_downsample(x, f), want, atol=1e-12)


def test_ssim_downsample_opt_in():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (400, 420)).astype(np.uint8)  # min side 400 -> f = 2
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    from scipy.ndimage import uniform_filter

    da = uniform_filter(a.astype(np.float64), 2, mode="reflect", origin=-1)[::2, ::2]
    db = uniform_filter(b.astype(np.float64), 2, mode="reflect", origin=-1)[::2, ::2]
    got = SSIM(downsample=True)(a, b)
    assert abs(got - sk_ssim_ref(da, db, 255)) <= TOL
    assert abs(ssim(a, b) - got) > 1e-5  # a different number, hence opt-in


# --- MSE and PSNR -------------------------------------------------------------------------------
def test_mse_psnr_match_skimage():
    ref, test = sample_pair(40, 40, seed=6)
    assert mse(ref, test) == pytest.approx(sk_mse(ref, test), rel=1e-12)
    assert psnr(ref, test) == pytest.approx(sk_psnr(ref, test, data_range=255), abs=1e-10)
    f_ref, f_test = ref / 255.0, test / 255.0
    assert mse(f_ref, f_test) == pytest.approx(sk_mse(f_ref, f_test), rel=1e-12)
    assert psnr(f_ref, f_test) == pytest.approx(sk_psnr(f_ref, f_test, data_range=1.0), abs=1e-10)
    u_ref, u_test = ref.astype(np.uint16) * 257, test.astype(np.uint16) * 257
    assert psnr(u_ref, u_test) == pytest.approx(sk_psnr(u_ref, u_test, data_range=65535), abs=1e-10)
    assert MSE()(ref, test) == mse(ref, test)


def test_psnr_identical_is_inf():
    ref, _ = sample_pair(16, 16)
    assert psnr(ref, ref) == float("inf")
    assert mse(ref, ref) == 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3))
def test_psnr_property_scale_invariant_and_symmetric(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, 3, 9, 7)).astype(np.uint8)
    b = rng.integers(0, 256, (n, 3, 9, 7)).astype(np.uint8)
    p8 = psnr(a, b)
    np.testing.assert_allclose(psnr(a / 255.0, b / 255.0), p8, atol=1e-9)
    np.testing.assert_allclose(psnr(b, a), p8)
    np.testing.assert_allclose(p8, [sk_psnr(x, y, data_range=255) for x, y in zip(a, b, strict=True)])


# --- inputs: batches, tensors, validation -------------------------------------------------------
def test_batches_give_per_image_values_numpy_and_torch():
    import torch

    pairs = [sample_pair(32, 32, seed=s) for s in range(3)]
    a = np.stack([p[0].transpose(2, 0, 1) for p in pairs])  # NCHW
    b = np.stack([p[1].transpose(2, 0, 1) for p in pairs])
    for fn in (mse, psnr, ssim):
        singles = np.array([fn(p[0], p[1]) for p in pairs])
        got = fn(a, b)
        assert isinstance(got, np.ndarray) and got.shape == (3,)
        np.testing.assert_allclose(got, singles, rtol=1e-12)
        np.testing.assert_allclose(fn(torch.from_numpy(a), torch.from_numpy(b)), singles, rtol=1e-12)
        # a CHW tensor is one image; float tensors take the [0, 1] range
        chw = fn(torch.from_numpy(a[0]).float() / 255, torch.from_numpy(b[0]).float() / 255)
        assert isinstance(chw, float)
        want = singles[0] / 255.0**2 if fn is mse else singles[0]  # MSE is on the data's scale
        assert chw == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    ("a", "b", "pattern"),
    [
        (np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8), r"differ in shape: a is \(8, 8\) but b is \(8, 9\)"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32), r"differ in dtype: a is uint8 but b is float32"),
        (np.full((8, 8), np.nan), np.zeros((8, 8)), r"a: contains 64 NaN"),
        (np.zeros((8, 8)), np.full((8, 8), np.inf), r"b: contains 64 NaN or infinite"),
        (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8), r"got 4.*drop the alpha"),
        (np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8), r"1 \(grey\) or 3 \(RGB\) channels.*got 8"),
        (np.zeros((8,), np.uint8), np.zeros((8,), np.uint8), r"shape \(H, W\).*got shape \(8,\)"),
        (np.zeros((8, 8), np.int32), np.zeros((8, 8), np.int32), r"dtype int32 is not supported"),
        ([[0, 1]], [[0, 1]], r"expected a NumPy array or a torch tensor, got list"),
        (np.zeros((0, 8), np.uint8), np.zeros((0, 8), np.uint8), r"empty"),
    ],
)
def test_validation_errors(a, b, pattern):
    for fn in (mse, psnr, ssim):
        with pytest.raises(InputError, match=pattern):
            fn(a, b)
    with pytest.raises(ValueError):  # InputError is a ValueError
        psnr(a, b)


def test_option_validation():
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(InputError, match="crop_border must be an integer >= 0"):
        psnr(a, a, crop_border=-1)
    with pytest.raises(InputError, match="leaves nothing"):
        psnr(a, a, crop_border=8)
    with pytest.raises(InputError, match="data_range must be a positive"):
        psnr(a, a, data_range=0)
    with pytest.raises(InputError, match="data_range must be None or a positive number"):
        psnr(a, a, data_range="255")


# --- sharpness ----------------------------------------------------------------------------------
def _laplacian_var_reference(grey):
    p = np.pad(grey, 1, mode="reflect")  # NumPy 'reflect' == OpenCV BORDER_REFLECT_101
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    return float(lap.var())


def test_sharpness_matches_independent_laplacian_and_opencv_grey():
    ref, test = sample_pair(40, 50, seed=7)
    grey_cv = cv2.cvtColor(ref.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    want = _laplacian_var_reference(grey_cv)
    assert sharpness(ref) == pytest.approx(want, rel=1e-5)  # float32 grey vs our float64 grey
    g = ref[..., 0]
    assert sharpness(g) == pytest.approx(_laplacian_var_reference(g.astype(np.float64)), rel=1e-12)
    # same number on any scale; a blurred copy is less sharp
    assert sharpness(ref / 255.0) == pytest.approx(sharpness(ref), rel=1e-12)
    assert Sharpness()(cv2.GaussianBlur(ref, (7, 7), 2.0)) < sharpness(ref)
    batch = np.stack([ref.transpose(2, 0, 1), test.transpose(2, 0, 1)])
    np.testing.assert_allclose(sharpness(batch), [sharpness(ref), sharpness(test)], rtol=1e-12)


# --- LPIPS --------------------------------------------------------------------------------------
def _load_like_lpips(name):
    """As lpips.load_image: cv2.imread, BGR -> RGB, uint8 (mapped to [-1, 1] by the metric)."""
    return np.ascontiguousarray(cv2.imread(str(LPIPS_DATA / f"{name}.png"))[:, :, ::-1])


@needs_backbone
def test_lpips_reproduces_published_distances():
    ref, p0, p1 = (_load_like_lpips(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    assert round(lpips_distance(ref, p0, backbone=BACKBONE), 3) == 0.722
    assert round(lpips_distance(ref, p1, backbone=BACKBONE), 3) == 0.138
    assert lpips_distance(ref, ref, backbone=BACKBONE) == pytest.approx(0.0, abs=1e-7)
    # float input in [0, 1] and a batch give the same numbers
    batch_a = np.stack([ref, ref]).transpose(0, 3, 1, 2) / 255.0
    batch_b = np.stack([p0, p1]).transpose(0, 3, 1, 2) / 255.0
    got = LPIPS(backbone=BACKBONE, batch_size=1)(batch_a, batch_b)
    np.testing.assert_allclose(got, [0.7219, 0.1376], atol=5e-4)


@needs_backbone
def test_lpips_backbone_from_environment_and_network_cache(monkeypatch):
    monkeypatch.setenv(lpips_mod.ENV_VAR, str(BACKBONE))
    src = lpips_mod.resolve_backbone()
    assert src.kind == "environment" and src.path == BACKBONE.resolve()
    net1 = lpips_mod.lpips_network()
    net2 = lpips_mod.lpips_network(BACKBONE)
    assert net1 is net2  # one network per (file, device)
    ref, p1 = _load_like_lpips("ex_ref"), _load_like_lpips("ex_p1")
    assert round(lpips_distance(ref, p1), 3) == 0.138


@needs_backbone
def test_lpips_full_torchvision_state_dict(tmp_path):
    import torch

    features = torch.load(BACKBONE, weights_only=True)
    full = {f"features.{k}": v for k, v in features.items()}
    full["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision's file also holds the classifier
    torch.save(full, tmp_path / "alexnet.pth")
    ref, p0 = _load_like_lpips("ex_ref"), _load_like_lpips("ex_p0")
    assert round(lpips_distance(ref, p0, backbone=tmp_path / "alexnet.pth"), 3) == 0.722


def test_lpips_packaged_backbone_works_offline(tmp_path, monkeypatch):
    """With no backbone given, LPIPS uses the AlexNet file shipped in the package, never the
    network: torch.hub's download functions and every socket connection are made to fail."""
    import hashlib

    from _support import offline_alexnet

    offline_alexnet(monkeypatch, tmp_path, "LPIPS")
    src = lpips_mod.resolve_backbone()
    assert src.kind == "packaged" and src.path == lpips_mod.PACKAGED_BACKBONE
    # the very file shared/README.md documents (torchvision's AlexNet features, BSD-3)
    digest = hashlib.sha256(src.path.read_bytes()).hexdigest()
    assert digest == "d6f747d1db300e743dbb5ae026b6370e1133379cdccf66231c91d0cef8c28eea"
    assert (src.path.parent / "LICENSE_torchvision_BSD-3.txt").read_text().startswith("BSD 3-Clause License")
    if not LPIPS_DATA.is_dir():
        pytest.skip(f"no LPIPS example images at {LPIPS_DATA}")
    ref, p0, p1 = (_load_like_lpips(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    np.testing.assert_allclose([lpips_distance(ref, p0), lpips_distance(ref, p1)], [0.7219, 0.1376], atol=5e-4)
    assert not list(tmp_path.rglob("*.pth"))  # nothing fetched into torch's cache


def test_lpips_named_backbone_wins_and_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv(lpips_mod.ENV_VAR, raising=False)
    x = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="given as backbone="):
        lpips_distance(x, x, backbone=tmp_path / "missing.pth")
    monkeypatch.setenv(lpips_mod.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"from \$DERMSR_LPIPS_BACKBONE"):
        lpips_distance(x, x)
    other = tmp_path / "other.pth"
    other.write_bytes(lpips_mod.PACKAGED_BACKBONE.read_bytes())
    monkeypatch.setenv(lpips_mod.ENV_VAR, str(other))
    assert lpips_mod.resolve_backbone().path == other.resolve()
    assert lpips_mod.resolve_backbone(lpips_mod.PACKAGED_BACKBONE).kind == "argument"


def test_lpips_rejects_wrong_weight_files(tmp_path):
    import torch

    bad = tmp_path / "bad.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 11, 11)}, bad)
    x = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(CheckpointError, match="missing"):
        lpips_distance(x, x, backbone=bad)
    wrong_shape = tmp_path / "shape.pth"
    torch.save({k: torch.zeros(3) for k in lpips_mod._CONV_KEYS}, wrong_shape)
    with pytest.raises(CheckpointError, match="does not fit"):
        lpips_distance(x, x, backbone=wrong_shape)
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        lpips_distance(x, x, backbone=text)


@needs_backbone
def test_lpips_grey_size_checks_and_large_image():
    rng = np.random.default_rng(8)
    g1 = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    g2 = np.clip(g1 + rng.normal(0, 30, g1.shape), 0, 255).astype(np.uint8)
    rgb = lambda g: np.repeat(g[..., None], 3, axis=2)  # noqa: E731
    assert lpips_distance(g1, g2, backbone=BACKBONE) == pytest.approx(
        lpips_distance(rgb(g1), rgb(g2), backbone=BACKBONE), abs=1e-6
    )
    small = np.zeros((30, 64, 3), np.uint8)
    with pytest.raises(InputError, match=r"at least 31×31 pixels, got 30×64"):
        lpips_distance(small, small, backbone=BACKBONE)
    big = rng.random((896, 896, 3), dtype=np.float32)
    d = lpips_distance(big, np.clip(big + 0.05, 0, 1), backbone=BACKBONE)
    assert np.isfinite(d) and d > 0


# --- Evaluator ----------------------------------------------------------------------------------
@needs_backbone
def test_evaluator_compare_and_pairwise_use_the_metric_functions():
    ref, test = sample_pair(48, 48, seed=9)
    ev = Evaluator(crop_border=2, y_channel=True, lpips_backbone=BACKBONE)
    row = ev.compare(ref, test)
    assert list(row) == ["mse", "psnr", "ssim", "lpips", "feature_distance"]
    assert row["psnr"] == psnr(ref, test, crop_border=2, y_channel=True)
    assert row["ssim"] == ssim(ref, test, crop_border=2, y_channel=True)
    assert row["lpips"] == lpips_distance(ref[2:-2, 2:-2], test[2:-2, 2:-2], backbone=BACKBONE)
    outputs = {"torch": ref, "onnxruntime": test, "ncnn": ref}
    rows = ev.pairwise(outputs)
    assert [(r["a"], r["b"]) for r in rows] == [("torch", "onnxruntime"), ("torch", "ncnn"), ("onnxruntime", "ncnn")]
    assert rows[1]["psnr"] == float("inf") and rows[1]["lpips"] == pytest.approx(0.0, abs=1e-7)
    only = ev.pairwise(outputs, reference="ncnn")
    assert [(r["a"], r["b"]) for r in only] == [("ncnn", "torch"), ("ncnn", "onnxruntime")]


def test_evaluator_options_and_errors():
    ref, test = sample_pair(32, 32)
    ev = Evaluator(metrics=["ssim", "mse"])
    assert list(ev.compare(ref, test)) == ["mse", "ssim"]
    assert ev.sharpness(ref) == sharpness(ref)
    with pytest.raises(UnknownNameError, match="unknown metric"):
        Evaluator(metrics=["psnr", "vif"])
    with pytest.raises(InputError, match="at least two"):
        ev.pairwise({"a": ref})
    with pytest.raises(UnknownNameError, match="reference 'x'"):
        ev.pairwise({"a": ref, "b": test}, reference="x")
    with pytest.raises(InputError, match="crop_border"):
        Evaluator(crop_border=-2)


def test_import_loads_no_runtime():
    import subprocess
    import sys

    code = (
        "import sys, dermsr, dermsr.evaluate; dermsr.Evaluator; "
        "print([m for m in ('torch', 'lpips', 'matplotlib', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
