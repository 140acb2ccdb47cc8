"""Tiling: the plan covers every pixel once, and tiled output equals untiled output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import tiny_model
from dermsr.enhance import Enhancer, plan_tiles, run_tiled
from dermsr.errors import InputError


@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    tile=st.one_of(st.none(), st.integers(1, 128)),
    pad=st.integers(0, 20),
)
@settings(max_examples=200, deadline=None)
def test_plan_covers_each_pixel_exactly_once(h, w, tile, pad):
    plan = plan_tiles(h, w, scale=4, tile=tile, pad=pad)
    count = np.zeros((h, w), np.int32)
    for t in plan:
        y0, y1, x0, x1 = t.core
        wy0, wy1, wx0, wx1 = t.window
        count[y0:y1, x0:x1] += 1
        assert 0 <= wy0 <= y0 < y1 <= wy1 <= h and 0 <= wx0 <= x0 < x1 <= wx1 <= w
        # context is the requested pad wherever the image allows it
        assert y0 - wy0 == min(pad, y0) and wy1 - y1 == min(pad, h - y1)
        if tile is not None:
            assert y1 - y0 <= tile and x1 - x0 <= tile
    assert (count == 1).all()
    # evenly laid out: core sizes along one axis differ by at most one pixel
    heights = {t.core[1] - t.core[0] for t in plan}
    assert max(heights) - min(heights) <= 1


def _run(model, x, tile, pad=None):
    return Enhancer(model, tile=tile, tile_pad=pad).run(x)


@given(
    h=st.integers(16, 70),
    w=st.integers(16, 70),
    tile=st.integers(16, 48),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25, deadline=None)
def test_tiled_equals_untiled(h, w, tile, seed):
    """With the default context (the receptive field) tiles are invisible (≤ 1e-5)."""
    model = tiny_model(num_conv=4, num_feat=8, seed=seed % 7)
    x = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
    whole = _run(model, x, None)
    tiled = _run(model, x, tile)
    assert np.abs(whole - tiled).max() <= 1e-5


def test_tiled_equals_untiled_real_model(isic_crop):
    x = (isic_crop.transpose(2, 0, 1)[None] / 255).astype(np.float32)
    whole = _run(None, x, None)
    for tile in (16, 20, 33):
        assert np.abs(whole - _run(None, x, tile)).max() <= 1e-5


def test_too_little_context_leaves_seams(isic_crop):
    """Real-ESRGAN's default context (10) is below the receptive field (18): seams appear."""
    x = (isic_crop.transpose(2, 0, 1)[None] / 255).astype(np.float32)
    whole = _run(None, x, None)
    with pytest.warns(UserWarning, match="seams"):
        seamy = _run(None, x, 16, pad=10)
    assert np.abs(whole - seamy).max() > 1e-3


def test_x3_model_tiles_exactly(isic_crop):
    x = (isic_crop[:31, :29].transpose(2, 0, 1)[None] / 255).astype(np.float32)
    whole = _run("realesr-animevideov3-x3", x, None)
    assert whole.shape == (1, 3, 93, 87)
    assert np.abs(whole - _run("realesr-animevideov3-x3", x, 16)).max() <= 1e-5


def _nearest_x2(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def test_run_tiled_runs_largest_window_first_and_stitches_exactly():
    """Largest windows first (pooled runtimes reuse their buffers for the smaller border
    tiles); the order is invisible in the result, checked against NumPy's own ×2 repeat."""
    x = np.random.default_rng(1).random((2, 3, 37, 53), dtype=np.float32)
    plan = plan_tiles(37, 53, scale=2, tile=12, pad=3)
    seen = []
    out = run_tiled(_nearest_x2, x, plan, on_tile=seen.append)
    np.testing.assert_array_equal(out, _nearest_x2(x))
    assert sorted(t.index for t in seen) == list(range(len(plan)))
    areas = [t.window_shape[0] * t.window_shape[1] for t in seen]
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[-1]


def test_run_tiled_single_tile_returns_the_runtime_output_uncopied():
    x = np.random.default_rng(2).random((1, 3, 9, 7), dtype=np.float32)
    made = []
    plan = plan_tiles(9, 7, scale=2, tile=None, pad=4)
    out = run_tiled(lambda w: made.append(_nearest_x2(w)) or made[-1], x, plan)
    assert out is made[0]


@pytest.mark.parametrize("bad", [0, -3, 2.5, "x"])
def test_bad_tile_values(bad):
    with pytest.raises(InputError, match="tile"):
        Enhancer(tile=bad)
