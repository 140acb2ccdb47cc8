"""Visual analysis: histogram and difference numbers against OpenCV/NumPy, figures' content,
reproducible PNG bytes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dermsr.errors import InputError
from dermsr.evaluate import (
    Evaluator,
    difference_figure,
    difference_map,
    histogram_figure,
    intensity_histogram,
    intensity_histograms,
    qualitative_grid,
    save_figure,
)
from dermsr.evaluate.visual import grey_levels
from dermsr.io import read_image


def rgb_image(h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3)).astype(np.uint8)


# --- histograms ---------------------------------------------------------------------------------
def test_grey_levels_match_opencv_luma():
    img = rgb_image(40, 40)
    exact = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    np.testing.assert_array_equal(grey_levels(img)[0], np.floor(exact + 0.5).astype(np.uint8))
    # OpenCV's own uint8 path (fixed-point arithmetic) differs by at most one level
    cv_u8 = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.abs(grey_levels(img)[0].astype(int) - cv_u8).max() <= 1


def test_histogram_counts_grey_levels():
    img = rgb_image()
    g = img[..., 0]
    np.testing.assert_array_equal(intensity_histogram(g), np.bincount(g.ravel(), minlength=256))
    h = intensity_histogram(img)
    want, _ = np.histogram(grey_levels(img)[0], bins=256, range=(0, 256))
    np.testing.assert_array_equal(h, want)
    assert h.dtype == np.int64 and h.sum() == img.shape[0] * img.shape[1]
    # float and uint16 versions of a grey image land in the same bins
    np.testing.assert_array_equal(intensity_histogram(g / 255.0), intensity_histogram(g))
    np.testing.assert_array_equal(intensity_histogram(g.astype(np.uint16) * 257), intensity_histogram(g))
    batch = np.stack([img.transpose(2, 0, 1), (255 - img).transpose(2, 0, 1)])
    hb = intensity_histogram(batch)
    assert hb.shape == (2, 256)
    np.testing.assert_array_equal(hb[0], h)


def test_histogram_figure_draws_one_curve_per_output_and_is_reproducible(tmp_path):
    hists = intensity_histograms({"torch": rgb_image(seed=1), "ncnn": rgb_image(seed=2)})
    fig = histogram_figure(hists, tmp_path / "a.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["torch", "ncnn"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), hists["torch"])
    histogram_figure(hists, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data
    png = read_image(tmp_path / "a.png")
    assert png.shape[:2] == (400, 700)  # figsize (7, 4) at 100 dpi
    dens = histogram_figure(hists, density=True, log=True)
    assert dens.axes[0].get_lines()[0].get_ydata().sum() == pytest.approx(1.0)
    with pytest.raises(InputError, match="shape"):
        histogram_figure({"x": np.zeros(10)})
    with pytest.raises(InputError, match="non-empty mapping"):
        intensity_histograms({})


# --- difference maps ----------------------------------------------------------------------------
def test_difference_map_has_no_wraparound():
    a, b = rgb_image(seed=3), rgb_image(seed=4)
    d = difference_map(a, b)
    assert d.dtype == np.uint8 and d.shape == a.shape
    np.testing.assert_array_equal(d, np.abs(a.astype(np.int16) - b.astype(np.int16)))
    assert not np.array_equal(d, a - b)  # what uint8 arithmetic would have produced
    # amplified: x10, clipped at 255
    np.testing.assert_array_equal(
        difference_map(a, b, amplify=10), np.minimum(np.abs(a.astype(np.int32) - b) * 10, 255)
    )
    # float images on [0, 1] are shown on the same 0-255 scale
    np.testing.assert_array_equal(difference_map(a / 255.0, b / 255.0), d)
    assert difference_map(a[..., 0], b[..., 0]).shape == a.shape[:2]
    batch = difference_map(np.stack([a, b]).transpose(0, 3, 1, 2), np.stack([b, a]).transpose(0, 3, 1, 2))
    assert batch.shape == (2, *a.shape)
    np.testing.assert_array_equal(batch[0], d)
    with pytest.raises(InputError, match="amplify"):
        difference_map(a, b, amplify=0)
    with pytest.raises(InputError, match="differ in shape"):
        difference_map(a, b[:-1])


def test_small_float_differences_visible_after_amplification():
    a = np.full((8, 8, 3), 0.5, np.float32)
    b = a + np.float32(2.0**-10)  # exact in float32: 0.249 grey levels
    assert difference_map(a, b).max() == 0
    assert difference_map(a, b, amplify=100).max() == 25  # 24.9 grey levels


def test_difference_figure_has_colour_scale(tmp_path):
    a, b = rgb_image(seed=5), rgb_image(seed=6)
    fig = difference_figure(a, b, tmp_path / "d1.png", title="torch vs ncnn")
    assert len(fig.axes) == 2  # the image and its colour bar
    im = fig.axes[0].images[0]
    want = np.abs(a.astype(float) - b).max(axis=2)
    np.testing.assert_array_equal(im.get_array(), want)
    assert im.get_clim() == (0.0, float(want.max()))
    mean_fig = difference_figure(a, b, reduce="mean", vmax=10)
    assert mean_fig.axes[0].images[0].get_clim() == (0.0, 10.0)
    difference_figure(a, b, tmp_path / "d2.png", title="torch vs ncnn")
    assert (tmp_path / "d1.png").read_bytes() == (tmp_path / "d2.png").read_bytes()
    # identical images: scale still spans one grey level
    assert difference_figure(a, a).axes[0].images[0].get_clim() == (0.0, 1.0)
    with pytest.raises(InputError, match="reduce"):
        difference_figure(a, b, reduce="sum")
    with pytest.raises(InputError, match="batch"):
        difference_figure(a[None].transpose(0, 3, 1, 2), b[None].transpose(0, 3, 1, 2))


# --- qualitative grid ---------------------------------------------------------------------------
def test_qualitative_grid_layout_and_crops(tmp_path):
    hr = rgb_image(64, 48, seed=7)
    lr = cv2.resize(hr, (12, 16), interpolation=cv2.INTER_AREA)  # ×4 smaller
    outputs = {"torch": rgb_image(64, 48, seed=8), "ncnn": rgb_image(64, 48, seed=9)}
    crops = [(8, 4, 16, 12), (40, 20, 8, 24)]
    fig = qualitative_grid(lr, outputs, hr, tmp_path / "g1.png", crops=crops)
    assert len(fig.axes) == 3 * 4  # (1 + 2 crops) rows × (input, 2 outputs, reference)
    axes = np.array(fig.axes).reshape(3, 4)
    assert [ax.get_title() for ax in axes[0]] == ["degraded input", "torch", "ncnn", "HR reference"]
    # zoom rows show exactly the crop of each image (LR crop scaled by 1/4)
    np.testing.assert_array_equal(axes[1, 1].images[0].get_array(), outputs["torch"][8:24, 4:16] / 255.0)
    np.testing.assert_array_equal(axes[2, 3].images[0].get_array(), hr[40:48, 20:44] / 255.0)
    np.testing.assert_array_equal(axes[1, 0].images[0].get_array(), lr[2:6, 1:4] / 255.0)
    assert len(axes[0, 2].patches) == 2  # crop boxes drawn on the full view
    qualitative_grid(lr, outputs, hr, tmp_path / "g2.png", crops=crops)
    assert (tmp_path / "g1.png").read_bytes() == (tmp_path / "g2.png").read_bytes()


def test_qualitative_grid_default_crop_grey_and_errors():
    hr = rgb_image(40, 40, seed=10)[..., 0]
    fig = qualitative_grid(hr[::4, ::4], {"x": hr}, hr)
    axes = np.array(fig.axes).reshape(2, 3)
    np.testing.assert_array_equal(axes[1, 2].images[0].get_array(), hr[15:25, 15:25] / 255.0)
    with pytest.raises(InputError, match=r"output 'x' is 20×40 but the reference is 40×40"):
        qualitative_grid(hr, {"x": hr[:20]}, hr)
    with pytest.raises(InputError, match="does not lie inside"):
        qualitative_grid(hr, {"x": hr}, hr, crops=[(30, 30, 20, 20)])


def test_save_figure_wants_png_and_leaves_no_temporary_files(tmp_path):
    fig = histogram_figure({"a": np.ones(256)})
    with pytest.raises(InputError, match=r"\.png"):
        save_figure(fig, tmp_path / "x.jpg")
    save_figure(fig, tmp_path / "sub" / "x.png")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]


def test_evaluator_delegates_visual_helpers():
    a, b = rgb_image(seed=11), rgb_image(seed=12)
    ev = Evaluator(metrics=["psnr"])
    np.testing.assert_array_equal(ev.difference_map(a, b, amplify=2), difference_map(a, b, amplify=2))
    np.testing.assert_array_equal(ev.histograms({"a": a})["a"], intensity_histogram(a))
