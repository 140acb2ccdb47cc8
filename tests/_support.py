"""Helpers shared by the tests (import as ``from _support import ...``)."""

from __future__ import annotations

import numpy as np


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
