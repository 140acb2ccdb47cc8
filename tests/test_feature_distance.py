"""The AlexNet feature distance against independent references: torchvision's own AlexNet
with the bundled weights loaded here, and the ``lpips`` package's AlexNet slices; its
properties (identity, symmetry, a square root that obeys the triangle inequality, growth with
noise); that it works with the network blocked; its errors and its place in the metric table."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dermsr.errors import BackendUnavailableError, CheckpointError, InputError, WeightsNotFoundError
from dermsr.evaluate import Evaluator, FeatureDistance, feature_distance
from dermsr.evaluate import features as feat_mod
from dermsr.evaluate import lpips as lpips_mod
from dermsr.evaluate.metric_info import FIDELITY_METRICS, METRIC_INFO, better

torch = pytest.importorskip("torch")
pytest.importorskip("lpips")

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@functools.cache
def _sample():
    from dermsr.data import sample_images
    from dermsr.io import read_image

    return read_image(sample_images()[2])


def real_crop(h=48, w=40, y0=300, x0=400):
    """A crop of a real dermoscopic image shipped with dermsr (uint8 RGB, 768×1024)."""
    return np.ascontiguousarray(_sample()[y0 : y0 + h, x0 : x0 + w])


def noisy(img, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def torchvision_relu5():
    """torchvision's AlexNet architecture (weights=None: built, nothing downloaded) with the
    bundled ImageNet weights loaded into it here; ``features[:12]`` ends with conv5's ReLU."""
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.alexnet(weights=None)
    state = torch.load(lpips_mod.PACKAGED_BACKBONE, map_location="cpu", weights_only=True)
    net.features.load_state_dict(state, strict=True)
    assert isinstance(net.features[11], torch.nn.ReLU) and isinstance(net.features[12], torch.nn.MaxPool2d)
    return net.features[:12].eval()


def reference(relu5, a, b):
    """Plain torch, one image at a time: x/255 → ImageNet normalisation → relu5 → mean of
    squared differences (float32 features; they agree with the metric to float32 precision)."""
    def feats(img):
        t = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        t = (t - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        with torch.no_grad():
            return relu5(t).double()

    return float(((feats(a) - feats(b)) ** 2).mean())


def test_matches_torchvision_alexnet_with_the_bundled_weights(torchvision_relu5):
    ref = real_crop(64, 80)
    for sigma in (2.0, 12.0, 40.0):
        test = noisy(ref, sigma)
        expected = reference(torchvision_relu5, ref, test)
        assert expected > 0
        assert feature_distance(ref, test) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # float input and a batch give the same values
    tests = [noisy(ref, s, seed=s) for s in (3, 9)]
    batch = feature_distance(np.stack([ref, ref]).transpose(0, 3, 1, 2), np.stack(tests).transpose(0, 3, 1, 2),
                             batch_size=1)
    # float32 features: the batch composition changes rounding (observed ≤ 1.2e-6 relative)
    np.testing.assert_allclose(batch, [reference(torchvision_relu5, ref, t) for t in tests], rtol=1e-5, atol=1e-6)
    assert feature_distance(ref / 255.0, tests[0] / 255.0) == pytest.approx(batch[0], rel=1e-5, abs=1e-6)


def test_matches_the_lpips_packages_alexnet_slices():
    """The lpips network's own trunk (its scaling layer on [-1, 1] input is the ImageNet
    normalisation) gives the same relu5 features: the fifth of its slices' outputs."""
    ref = real_crop(48, 48, 200, 500)
    test = noisy(ref, 15.0, seed=4)
    net = lpips_mod.lpips_network()

    def relu5(img):
        t = torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            return net.net.forward(net.scaling_layer(t))[4].double()

    expected = float(((relu5(ref) - relu5(test)) ** 2).mean())
    assert feature_distance(ref, test) == pytest.approx(expected, rel=1e-5)


def test_identity_symmetry_grey_and_data_range():
    a = real_crop(40, 40)
    b = noisy(a, 10.0)
    assert feature_distance(a, a) == 0.0
    assert FeatureDistance(crop_border=3)(a, b) == feature_distance(a, b, crop_border=3)
    assert feature_distance(a, b) == pytest.approx(feature_distance(b, a), rel=1e-12)
    # uint16 on its own scale and floats on [0, 1] mean the same picture
    assert feature_distance(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(
        feature_distance(a, b), rel=1e-5)
    g1, g2 = a[..., 1], b[..., 1]
    rgb = lambda g: np.repeat(g[..., None], 3, axis=2)  # noqa: E731
    assert feature_distance(g1, g2) == pytest.approx(feature_distance(rgb(g1), rgb(g2)), rel=1e-6)
    assert feature_distance(a, b, crop_border=3) == pytest.approx(
        feature_distance(a[3:-3, 3:-3], b[3:-3, 3:-3]), rel=1e-12)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), y0=st.integers(0, 600), x0=st.integers(0, 900))
def test_square_root_obeys_the_triangle_inequality(seed, y0, x0):
    """√D is a Euclidean distance between feature maps, so it is a (pseudo-)metric."""
    x = real_crop(40, 36, y0, x0)
    y, z = noisy(x, 20.0, seed), noisy(x, 35.0, seed + 1)
    dxy, dyz, dxz = (np.sqrt(feature_distance(p, q)) for p, q in ((x, y), (y, z), (x, z)))
    assert dxz <= dxy + dyz + 1e-6


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), y0=st.integers(0, 600), x0=st.integers(0, 900),
       sigma=st.floats(0.005, 0.05), ratio=st.floats(2.0, 4.0))
def test_distance_grows_with_the_noise_level(seed, y0, x0, sigma, ratio):
    """The same noise pattern at a larger amplitude moves the features further from the image."""
    x = real_crop(48, 48, y0, x0) / 255.0
    n = np.random.default_rng(seed).normal(0, 1, x.shape)
    near = feature_distance(x, np.clip(x + sigma * n, 0, 1))
    far = feature_distance(x, np.clip(x + ratio * sigma * n, 0, 1))
    assert 0 < near < far


def test_works_with_the_network_blocked(tmp_path, monkeypatch):
    """The bundled weights are used; torch.hub's download functions and every socket
    connection fail, and nothing is written into torch's cache."""
    from _support import offline_alexnet

    offline_alexnet(monkeypatch, tmp_path, "the feature distance")
    a = real_crop(32, 32)
    assert feature_distance(a, noisy(a, 8.0)) > 0
    assert feat_mod.clear_cache is lpips_mod.clear_cache  # one cache for both AlexNet networks
    assert not list(tmp_path.rglob("*"))


def test_errors(tmp_path, monkeypatch):
    x = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match=r"at least 31×31 pixels, got 30×64"):
        feature_distance(np.zeros((30, 64, 3), np.uint8), np.zeros((30, 64, 3), np.uint8))
    with pytest.raises(InputError, match="crop_border"):
        feature_distance(x, x, crop_border=1)  # 30×30 left
    with pytest.raises(InputError, match="batch_size"):
        feature_distance(x, x, batch_size=0)
    with pytest.raises(WeightsNotFoundError, match="given as backbone="):
        feature_distance(x, x, backbone=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({k: torch.zeros(3) for k in lpips_mod._CONV_KEYS}, bad)
    with pytest.raises(CheckpointError, match="does not fit"):
        feature_distance(x, x, backbone=bad)
    import dermsr._extras as extras

    monkeypatch.setattr(extras, "missing", lambda extra: ["lpips"])
    with pytest.raises(BackendUnavailableError, match=r"feature distance needs 'lpips'.*dermsr\[metrics\]"):
        feature_distance(x, x)


def test_in_the_metric_table_and_the_evaluator():
    info = METRIC_INFO["feature_distance"]
    assert "feature_distance" in FIDELITY_METRICS and info.higher_is_better is False
    assert info.description and info.unit and better("feature_distance", 0.1, 0.2)
    a = real_crop(48, 48)
    b = noisy(a, 12.0)
    ev = Evaluator(crop_border=2)
    row = ev.compare(a, b)
    assert list(row) == list(FIDELITY_METRICS)
    assert row["feature_distance"] == feature_distance(a[2:-2, 2:-2], b[2:-2, 2:-2])
    assert Evaluator(metrics=["feature_distance"]).compare(a, a) == {"feature_distance": 0.0}


def test_scorecard_table_has_a_feature_distance_column():
    from dermsr.evaluate.scorecard import format_markdown, metric_functions

    fns = metric_functions()
    assert {"lpips", "feature_distance"} <= set(fns)
    a = real_crop(40, 40) / 255.0
    assert fns["feature_distance"](a, a) == 0.0
    summary = {"bicubic": {"psnr": 30.0, "ssim": 0.9, "feature_distance": 0.2, "shift": [0, 0, 0], "images": 1},
               "m": {"psnr": 31.0, "ssim": 0.91, "feature_distance": 0.1, "shift": [0, 0, 0], "images": 1,
                     "psnr_win": 1.0, "ssim_win": 1.0, "feature_distance_win": 1.0}}
    md = format_markdown({"summary": {"g": {"thesis": summary}}, "settings": {},
                          "targets_met": {"g": {"thesis": {"m": {"psnr": True}}}}})
    assert "| method | PSNR (dB) | SSIM | feature distance | PSNR wins | SSIM wins | feature distance wins |" in md
    assert "| 0.1 |" in md and "| 100 % |" in md
