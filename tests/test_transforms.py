"""dermsr.transforms: Enhance in torchvision pipelines, EnhancedDataset, DataLoader workers."""

from __future__ import annotations

import os
from collections import namedtuple

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from dermsr import Enhancer
from dermsr.data import sample_images
from dermsr.errors import InputError
from dermsr.io import read_image
from dermsr.transforms import Enhance, EnhancedDataset


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(threads=1)


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 16x16 RGB uint8 crop of a real dermoscopic sample, area-downscaled."""
    img = read_image(sample_images()[0])
    return cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA)


def _area_down(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.resize(a, (w // s, h // s), interpolation=cv2.INTER_AREA)


# -- PIL ------------------------------------------------------------------------------------
def _pil(crop: np.ndarray, mode: str) -> Image.Image:
    if mode == "RGB":
        return Image.fromarray(crop)
    if mode == "RGBA":
        alpha = np.full(crop.shape[:2], 200, np.uint8)
        return Image.fromarray(np.dstack([crop, alpha]))
    if mode == "L":
        return Image.fromarray(crop).convert("L")
    grey = np.asarray(Image.fromarray(crop).convert("L")).astype(np.uint16) * 257
    return Image.fromarray(grey)  # I;16


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16"])
def test_pil_mode_is_kept_and_content_follows_input(enhancer, crop, mode):
    img = _pil(crop, mode)
    assert img.mode == mode
    out = Enhance(enhancer)(img)
    assert isinstance(out, Image.Image) and out.mode == mode and out.size == (64, 64)
    got = np.asarray(out)
    np.testing.assert_array_equal(got, enhancer.enhance(np.asarray(img)))
    # independent check that channels/levels were not scrambled: ×4 output, area-downscaled,
    # looks like the input (PSNR by scikit-image)
    ref = np.asarray(img)
    psnr = peak_signal_noise_ratio(ref, _area_down(got, 4), data_range=65535 if mode == "I;16" else 255)
    assert psnr > 28  # measured 33 dB for RGB; a BGR swap gives 23 dB
    if mode == "RGBA":
        assert np.all(got[..., 3] == 200)


def test_pil_big_endian_16_bit_keeps_byte_order(enhancer):
    arr = (np.arange(36, dtype=np.uint16).reshape(6, 6) * 1500).astype(">u2")
    img = Image.fromarray(arr)
    assert img.mode == "I;16B"
    out = Enhance(enhancer)(img)
    assert out.mode == "I;16B"
    np.testing.assert_array_equal(np.asarray(out).astype(np.uint16), enhancer.enhance(arr.astype(np.uint16)))


@pytest.mark.parametrize("mode", ["CMYK", "P", "F", "LA"])
def test_unsupported_pil_mode_is_refused(enhancer, mode):
    with pytest.raises(InputError, match=rf"mode '{mode}' is not supported.*convert"):
        Enhance(enhancer)(Image.new(mode, (4, 4)))


# -- arrays and tensors ---------------------------------------------------------------------
def test_numpy_and_tensor_kinds(enhancer, crop):
    t = Enhance(enhancer)
    out = t(crop)
    assert isinstance(out, np.ndarray) and out.shape == (64, 64, 3) and out.dtype == np.uint8
    chw = torch.from_numpy(crop).permute(2, 0, 1).contiguous()
    tout = t(chw)
    assert isinstance(tout, torch.Tensor) and tout.dtype == torch.uint8 and tuple(tout.shape) == (3, 64, 64)
    np.testing.assert_array_equal(tout.permute(1, 2, 0).numpy(), out)


def test_other_inputs_are_refused(enhancer):
    t = Enhance(enhancer)
    with pytest.raises(InputError, match="PIL image, an HWC/HW NumPy array"):
        t([[0, 1], [1, 0]])
    with pytest.raises(InputError, match="Mask"):
        t(tv_tensors.Mask(torch.zeros(1, 4, 4, dtype=torch.uint8)))
    with pytest.raises(InputError, match="needs an image"):
        t()
    with pytest.raises(InputError, match="not both"):
        Enhance(enhancer, threads=1)


# -- torchvision.transforms.v2 --------------------------------------------------------------
def test_v2_compose_toimage_enhance_todtype(enhancer, crop):
    pipeline = v2.Compose([v2.ToImage(), Enhance(enhancer), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(Image.fromarray(crop))
    assert isinstance(out, tv_tensors.Image)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 64, 64)
    want = enhancer.enhance(crop).astype(np.float32) / 255
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-6)


def test_v2_compose_float_then_normalize_with_label(enhancer, crop):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    pipeline = v2.Compose([
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        Enhance(enhancer),
        v2.CenterCrop(32),
        v2.Normalize(mean, std),
    ])
    img, label = pipeline(Image.fromarray(crop), 3)
    assert label == 3 and isinstance(img, tv_tensors.Image) and tuple(img.shape) == (3, 32, 32)
    full = enhancer.enhance(crop.astype(np.float32) / 255)[16:48, 16:48]
    want = (full - np.array(mean, np.float32)) / np.array(std, np.float32)
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-5)


# -- EnhancedDataset -----------------------------------------------------------------------
def test_enhanced_dataset_items(enhancer, crop):
    Sample = namedtuple("Sample", "label image")
    t = Enhance(enhancer)
    tuples = EnhancedDataset([(crop, 0), (crop[:8], 1)], t)
    assert len(tuples) == 2
    img, label = tuples[1]
    assert label == 1 and img.shape == (32, 64, 3)
    np.testing.assert_array_equal(img, enhancer.enhance(crop[:8]))
    dicts = EnhancedDataset([{"image": crop, "y": 5}], enhancer, key="image")
    assert dicts[0]["y"] == 5 and dicts[0]["image"].shape == (64, 64, 3)
    named = EnhancedDataset([Sample(2, crop)], t, key=1)[0]
    assert isinstance(named, Sample) and named.label == 2 and named.image.shape == (64, 64, 3)
    bare = EnhancedDataset([crop], t)
    assert bare[0].shape == (64, 64, 3)
    with pytest.raises(InputError, match="no key 'img'"):
        EnhancedDataset([{"image": crop}], t, key="img")[0]
    with pytest.raises(InputError, match="map-style"):
        EnhancedDataset(iter([crop]), t)


# -- DataLoader workers: pickling, fork and spawn --------------------------------------------
class _WhoRan:
    """Adds (worker pid, pid the worker's session was made in) to each item."""

    def __init__(self, ds: EnhancedDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        image, label = self.ds[i]
        return image, label, os.getpid(), self.ds.enhance.enhancer._session_pid


def _samples() -> list[tuple[torch.Tensor, int]]:
    rng = np.random.default_rng(7)
    return [(torch.from_numpy(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)), i) for i in range(6)]


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_workers_match_main_process(context):
    e = Enhancer(threads=1)
    samples = _samples()
    want = [e.enhance(x) for x, _ in samples]  # also opens a session in this process
    assert e._session_pid == os.getpid()
    ds = _WhoRan(EnhancedDataset(samples, e))
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=context, timeout=300)
    got, labels, pids = [], [], set()
    for images, batch_labels, worker_pids, session_pids in loader:
        got.extend(images)
        labels.extend(batch_labels.tolist())
        # each worker made its own session, in its own process: never the parent's
        assert worker_pids.tolist() == session_pids.tolist()
        pids.update(worker_pids.tolist())
    assert os.getpid() not in pids and len(pids) == 2
    assert labels == list(range(6))
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.uint8 and tuple(g.shape) == (3, 64, 64)
        torch.testing.assert_close(g, w, rtol=0, atol=0)
