"""Regression tests for issue 14, "Hardening: what broke when we tried to break it".

One test (or a few) per row of the issue, named ``test_hardening_<case>``; each failed before
its fix. The probe's other findings (hostile pickles, threads, SIGKILL-and-resume, full disk
for images, NaN outputs) are covered by the area's own test files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pytest

from _support import tiny_model
from dermsr import Enhancer
from dermsr.backends import Backend, register, unregister
from dermsr.errors import BackendError


@contextmanager
def _backend(run: Callable[[np.ndarray, int], np.ndarray]):
    """Register a plugin backend named "hardening-test" whose session computes ``run(x, scale)``."""

    class _Test(Backend):
        name = "hardening-test"
        runtime_module = "numpy"

        def load(self, model, options):
            class Session:
                backend = "hardening-test"
                thread_safe = True

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
    with pytest.warns(UserWarning, match=r"tile_pad=0 is less than the receptive field .*\(6 pixels\)"):
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
