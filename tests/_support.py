"""Helpers shared by the tests (import as ``from _support import ...``)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio


def tiny_model(num_conv: int = 2, num_feat: int = 8, upscale: int = 4, seed: int = 0, act_type: str = "prelu"):
    """A small random SRVGGNetCompact (fast), built through the public Model type."""
    from dermsr.models import Model, ModelConfig, expected_shapes

    config = ModelConfig(num_feat=num_feat, num_conv=num_conv, upscale=upscale, act_type=act_type)
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in expected_shapes(config).items():
        if key.endswith("bias"):
            weights[key] = rng.normal(0, 0.01, shape).astype(np.float32)
        elif len(shape) == 1:
            weights[key] = np.full(shape, 0.2, np.float32)
        else:
            fan_in = shape[1] * 9
            weights[key] = rng.normal(0, (1.0 / fan_in) ** 0.5, shape).astype(np.float32)
    return Model(f"tiny-{num_conv}x{num_feat}", config, weights, "random test weights")


def tiny_rrdb(num_block: int = 2, num_feat: int = 8, num_grow_ch: int = 4, seed: int = 0):
    """A small random ×4 RRDBNet (fast), built through the public Model type."""
    from dermsr.models import Model, RRDBConfig
    from dermsr.models.rrdb import rrdb_expected_shapes

    config = RRDBConfig(num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)
    rng = np.random.default_rng(seed)
    weights = {}
    for key, shape in rrdb_expected_shapes(config).items():
        if key.endswith("bias"):
            weights[key] = rng.normal(0, 0.01, shape).astype(np.float32)
        else:
            weights[key] = rng.normal(0, (1.0 / (shape[1] * 9)) ** 0.5, shape).astype(np.float32)
    return Model(f"tiny-rrdb-{num_block}x{num_feat}", config, weights, "random test weights")


def offline_alexnet(monkeypatch, torch_home, what: str) -> None:
    """Make every way to fetch AlexNet fail (torch.hub's download functions, every socket
    connection), point torch's cache at ``torch_home``, unset ``$DERMSR_LPIPS_BACKBONE`` and
    forget the AlexNet networks built so far, so the next one is built from the packaged file."""
    import socket

    import torch.hub

    from dermsr.evaluate import lpips

    monkeypatch.delenv(lpips.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    lpips.clear_cache()

    def no_network(*args, **kwargs):
        raise AssertionError(f"{what} tried to download something")

    for owner, name in ((torch.hub, "load_state_dict_from_url"), (torch.hub, "download_url_to_file"),
                        (socket.socket, "connect")):
        monkeypatch.setattr(owner, name, no_network)


#: The one tolerance table: (max |backend − torch| on the [0, 1] scale, min PSNR in dB), fp32.
#: Measured on this 2-core x86-64 CPU (see docs/backends/index.md): ONNX Runtime ≤ 1.1e-6 and
#: NCNN ≤ 1e-5 max abs over random, flat, saturated and real images (PSNR ≥ 120 dB); the
#: bounds leave ×5 headroom for other CPUs' kernels. Backends not listed get DEFAULT_TOLERANCE.
#: dermsr's torch backend runs channels-last on the CPU, which reorders oneDNN's summation:
#: ≤ 5.5e-6 from the plain NCHW module (docs/performance.md), so it gets the same bound.
TOLERANCE: dict[str, tuple[float, float]] = {
    "torch": (5e-5, 100.0),
    "onnxruntime": (5e-5, 100.0),
    "ncnn": (5e-5, 100.0),
    "executorch": (1e-4, 90.0),
}
DEFAULT_TOLERANCE = (1e-4, 80.0)


def tolerance(backend: str) -> tuple[float, float]:
    return TOLERANCE.get(backend, DEFAULT_TOLERANCE)


def assert_close(got: np.ndarray, ref: np.ndarray, backend: str, what: str = "") -> tuple[float, float]:
    """Check ``got`` against the torch reference with the table's bounds; returns (max abs, PSNR)."""
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, ref.shape, got.dtype)
    max_abs = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    with np.errstate(divide="ignore"):
        psnr = peak_signal_noise_ratio(ref.astype(np.float64), got.astype(np.float64), data_range=1.0)
    bound, min_psnr = tolerance(backend)
    assert max_abs <= bound, f"{backend} {what}: max abs diff {max_abs:.3g} > {bound:.3g}"
    assert psnr >= min_psnr, f"{backend} {what}: PSNR {psnr:.1f} dB < {min_psnr} dB"
    return max_abs, psnr


def make_image(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """Float32 images in [0, 1] of several kinds (HWC RGB, HW grey, HWC RGBA)."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.random((h, w, 3), dtype=np.float32)
    if kind == "flat":
        return np.full((h, w, 3), rng.random(3, dtype=np.float32), np.float32)
    if kind == "saturated":
        return (rng.random((h, w, 3)) < 0.5).astype(np.float32)  # only 0 and 1
    if kind == "gray":
        return rng.random((h, w), dtype=np.float32)
    if kind == "rgba":
        return rng.random((h, w, 4), dtype=np.float32)
    if kind == "smooth":
        yy, xx = np.mgrid[0:h, 0:w]
        base = 0.5 + 0.5 * np.sin(yy[..., None] / 3.0 + xx[..., None] / 5.0 + np.arange(3))
        return base.astype(np.float32)
    raise ValueError(kind)


KINDS = ["noise", "flat", "saturated", "gray", "rgba", "smooth"]
