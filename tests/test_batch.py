"""Enhancer.enhance_batch: grouping, batching, kinds, fallbacks, equality with single calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dermsr import Enhancer
from dermsr.enhance import registry
from dermsr.enhance.backends.torch import TorchSession
from dermsr.errors import InputError

# PyTorch/CPU: batched and single-image runs may pick different convolution kernels, which
# changes float summation order. Measured here (2-core x86-64, torch 2.14.1, sizes 8..128 px,
# N = 2..8): max abs difference 2.8e-6, and at most 1 grey level in rare uint8 pixels.
FLOAT_TOL = 1e-5


def _nearest(x: np.ndarray, s: int) -> np.ndarray:
    return x.repeat(s, axis=2).repeat(s, axis=3)


class _NearestSession(registry.SessionBase):
    """A fake runtime: nearest-neighbour ×scale, recording the batch size of every call."""

    backend = "nearest-test"

    def __init__(self, scale: int, calls: list[int], supports_batch: bool) -> None:
        self.scale = scale
        self.calls = calls
        self.capabilities = registry.Capabilities(thread_safe=True, batch=supports_batch)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(x.shape[0])
        return _nearest(x, self.scale)


class _NearestBatch(registry.Backend):
    name = "nearest-batch-test"
    runtime_module = "numpy"
    calls: list[int] = []  # noqa: RUF012 - shared on purpose: the test reads it
    batch = True

    def load(self, model, options):
        return _NearestSession(model.scale, type(self).calls, type(self).batch)


class _NearestSingle(_NearestBatch):
    name = "nearest-single-test"
    calls: list[int] = []  # noqa: RUF012
    batch = False


class _NearestUndeclared(_NearestBatch):
    """A session that states no capabilities at all (breaks the contract)."""

    name = "nearest-undeclared-test"
    calls: list[int] = []  # noqa: RUF012

    def load(self, model, options):
        calls = type(self).calls

        class Plain:
            backend = "nearest-undeclared-test"
            thread_safe = True

            def run(self, x):
                calls.append(x.shape[0])
                return _nearest(x, model.scale)

        return Plain()


@pytest.fixture(scope="module", autouse=True)
def fake_backends():
    for cls in (_NearestBatch, _NearestSingle, _NearestUndeclared):
        registry.register(cls)
    yield
    for cls in (_NearestBatch, _NearestSingle, _NearestUndeclared):
        registry.unregister(cls.name)


@pytest.fixture(scope="module")
def torch_enhancer() -> Enhancer:
    return Enhancer(backend="torch", threads=1)


def _images(rng: np.random.Generator) -> list:
    """A mix of kinds: two size groups (12x10 and 9x7) plus one image alone (5x6)."""
    return [
        rng.integers(0, 256, (12, 10, 3), dtype=np.uint8),
        rng.integers(0, 65536, (12, 10), dtype=np.uint16),
        rng.integers(0, 256, (9, 7, 4), dtype=np.uint8),
        rng.random((12, 10, 3), dtype=np.float32),
        torch.from_numpy(rng.integers(0, 256, (3, 9, 7), dtype=np.uint8)),
        rng.integers(0, 256, (5, 6, 1), dtype=np.uint8),
        torch.from_numpy(rng.random((1, 3, 12, 10), dtype=np.float32)),
    ]


def _as_numpy(obj) -> np.ndarray:
    return obj.numpy() if isinstance(obj, torch.Tensor) else obj


def _assert_close(got, want, *, exact: bool) -> None:
    assert type(got) is type(want)
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    g, w = _as_numpy(got), _as_numpy(want)
    if exact:
        np.testing.assert_array_equal(g, w)
    elif np.issubdtype(g.dtype, np.integer):
        assert np.abs(g.astype(np.int64) - w.astype(np.int64)).max() <= 1
    else:
        np.testing.assert_allclose(g, w, rtol=0, atol=FLOAT_TOL)


# -- fake runtime: exact reference, call pattern ------------------------------------------------
def test_same_size_images_run_together_and_match_nearest_reference():
    _NearestBatch.calls.clear()
    e = Enhancer(backend="nearest-batch-test")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(5)]
    images.insert(2, rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    out = e.enhance_batch(images, batch_size=3)
    assert sorted(_NearestBatch.calls) == [1, 2, 3]  # 5 same-size images in 3 + 2, one alone
    for img, got in zip(images, out, strict=True):
        np.testing.assert_array_equal(got, img.repeat(4, axis=0).repeat(4, axis=1))


def test_session_without_capabilities_is_refused_by_name():
    from dermsr.errors import BackendError

    with pytest.raises(BackendError, match=r"'nearest-undeclared-test' returned a session without raw_call, capabilities"):
        Enhancer(backend="nearest-undeclared-test", tile=4).enhance(np.zeros((4, 4, 3), np.uint8))


def test_runtime_without_batch_support_gets_one_image_per_call():
    for backend, cls in (("nearest-single-test", _NearestSingle),):
        cls.calls.clear()
        e = Enhancer(backend=backend, tile=4)
        assert not e.supports_batch
        rng = np.random.default_rng(2)
        images = [rng.integers(0, 256, (9, 9, 3), dtype=np.uint8) for _ in range(3)]
        out = e.enhance_batch(images)
        assert cls.calls and set(cls.calls) == {1}
        for img, got in zip(images, out, strict=True):
            np.testing.assert_array_equal(got, img.repeat(4, axis=0).repeat(4, axis=1))
        # a batch tensor given to enhance() is split too, never passed whole
        cls.calls.clear()
        t = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())
        y = e.enhance(t)
        assert set(cls.calls) == {1} and tuple(y.shape) == (3, 3, 36, 36)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([(3, 3), (4, 6), (6, 4), (5, 5)]), min_size=0, max_size=7),
    batch_size=st.integers(1, 4),
    tile=st.sampled_from(["auto", 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_batch_equals_single_calls_in_order(sizes, batch_size, tile, seed):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in sizes]
    e = Enhancer(backend="nearest-batch-test", tile=tile)
    out = e.enhance_batch(images, batch_size=batch_size)
    assert len(out) == len(images)
    for img, got in zip(images, out, strict=True):
        np.testing.assert_array_equal(got, e.enhance(img))


# -- PyTorch: the real model ------------------------------------------------------------------
def test_torch_session_declares_batch_support(torch_enhancer):
    assert TorchSession.capabilities.batch is True
    assert torch_enhancer.supports_batch


def test_torch_mixed_list_matches_single_calls(torch_enhancer, monkeypatch):
    sizes: list[int] = []
    real_run = TorchSession.run

    def spy(self, x):
        sizes.append(x.shape[0])
        return real_run(self, x)

    monkeypatch.setattr(TorchSession, "run", spy)
    images = _images(np.random.default_rng(3))
    out = torch_enhancer.enhance_batch(images)
    assert sorted(sizes) == [1, 2, 4]  # 12x10: 3 arrays + a 1-image tensor batch; 9x7: 2; 5x6: 1
    singles = [torch_enhancer.enhance(img) for img in images]
    for i, (got, want) in enumerate(zip(out, singles, strict=True)):
        _assert_close(got, want, exact=(i == 5))  # the 5x6 image runs alone: bit-identical


def test_torch_tensor_batch_keeps_dtype_and_matches_single(torch_enhancer):
    rng = np.random.default_rng(4)
    for dtype in (torch.uint8, torch.float32, torch.float16):
        base = torch.from_numpy(rng.random((3, 4, 8, 6), dtype=np.float32))
        batch = (base * 255).round().to(torch.uint8) if dtype == torch.uint8 else base.to(dtype)
        out = torch_enhancer.enhance_batch(batch, batch_size=2)
        assert out.dtype == dtype and tuple(out.shape) == (3, 4, 32, 24)
        for i in range(3):
            want = torch_enhancer.enhance(batch[i])
            got = out[i]
            if dtype == torch.float16:  # fp16 storage: compare at its own resolution
                torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=1e-3)
            else:
                _assert_close(got, want, exact=False)


def test_numpy_nchw_batch(torch_enhancer):
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 65536, (2, 1, 7, 5), dtype=np.uint16)
    out = torch_enhancer.enhance_batch(batch)
    assert out.dtype == np.uint16 and out.shape == (2, 1, 28, 20)
    for i in range(2):
        want = torch_enhancer.enhance(batch[i, 0])
        assert np.abs(out[i, 0].astype(np.int64) - want.astype(np.int64)).max() <= 1


def test_batch_on_real_sample_within_tolerance(torch_enhancer):
    import cv2

    from dermsr.data import sample_images
    from dermsr.io import read_image

    crops = [cv2.resize(read_image(p), (24, 18), interpolation=cv2.INTER_AREA) for p in sample_images()]
    out = torch_enhancer.enhance_batch([c.astype(np.float32) / 255 for c in crops])
    for crop, got in zip(crops, out, strict=True):
        want = torch_enhancer.enhance(crop.astype(np.float32) / 255)
        assert np.abs(got - want).max() <= FLOAT_TOL


def test_empty_list_gives_empty_list(torch_enhancer):
    assert torch_enhancer.enhance_batch([]) == []


# -- errors -----------------------------------------------------------------------------------
def test_nhwc_array_is_refused_with_a_hint(torch_enhancer):
    with pytest.raises(InputError, match=r"NHWC batch\?"):
        torch_enhancer.enhance_batch(np.zeros((2, 8, 8, 3), np.uint8))


def test_bad_item_is_named_by_index(torch_enhancer):
    with pytest.raises(InputError, match=r"images\[1\].*dtype int32"):
        torch_enhancer.enhance_batch([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.int32)])


@pytest.mark.parametrize("bad", ["image.png", 3, torch.zeros(3, 4, 4)])
def test_not_a_batch_is_refused(torch_enhancer, bad):
    with pytest.raises(InputError, match=r"expects a sequence|\(N, C, H, W\) tensor batch"):
        torch_enhancer.enhance_batch(bad)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_batch_size_must_be_positive_int(torch_enhancer, bad):
    with pytest.raises(InputError, match="batch_size"):
        torch_enhancer.enhance_batch([np.zeros((4, 4, 3), np.uint8)], batch_size=bad)
