"""Read weights from PyTorch checkpoints, safetensors and NumPy ``.npz`` files.

PyTorch files are opened with ``torch.load(weights_only=True)`` only (PyTorch is the
``dermsr[torch]`` extra): a pickle that would need to run code to unpickle is refused, never
executed, and so is a TorchScript archive (a ``.pt`` saved with ``torch.jit.save`` is a
program, not weights). ``.npz`` files (how dermsr ships its own weights, so they load without
torch) are read with ``numpy.load(allow_pickle=False)``: arrays under the state-dict names.

Parameters (``*.weight``, ``*.bias``) must be floating point; other entries may be integer
buffers (the index tables of window-attention networks, BatchNorm's ``num_batches_tracked``),
kept with their dtype for the architectures that carry them.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, CheckpointError, UnsafeCheckpointError

__all__ = ["load_state_dict", "unwrap_state_dict"]

#: Containers Real-ESRGAN / BasicSR (and other trainers') checkpoints use, in order of preference.
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Pick the weights out of a checkpoint dict and return them as float32 NumPy arrays.

    ``params_ema`` is preferred over ``params`` (Real-ESRGAN keeps both, the EMA weights are
    the released ones); a bare state dict is taken as is. ``module.`` prefixes left by
    ``DataParallel`` are stripped.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: state-dict keys must be strings, got {key!r}")
        name = key[len("module.") :] if key.startswith("module.") else key
        out[name] = _to_numpy(value, f"{source}: {key}", buffer=name.rsplit(".", 1)[-1] not in ("weight", "bias"))
    if not out:
        raise CheckpointError(f"{source}: the checkpoint holds no weights")
    return out


def _to_numpy(value: Any, where: str, buffer: bool = False) -> np.ndarray:
    """float32 weights; with ``buffer`` (an entry that is not a weight or bias), an integer
    tensor is kept as an integer array instead of being refused."""
    if isinstance(value, np.ndarray):
        arr = value
    elif hasattr(value, "detach") and hasattr(value, "cpu"):
        if not value.is_floating_point():  # checked before .float() would hide it
            arr = _integer_buffer(value) if buffer else None
            if arr is None:
                raise CheckpointError(f"{where}: expected floating-point weights, got {value.dtype}")
            return arr
        arr = value.detach().cpu().float().numpy()
    else:
        raise CheckpointError(f"{where}: expected a tensor, got {type(value).__name__}")
    if buffer and np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise CheckpointError(f"{where}: expected floating-point weights, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise CheckpointError(f"{where}: weights contain NaN or infinity")
    return arr


def _integer_buffer(tensor: Any) -> np.ndarray | None:
    """A torch integer tensor as a NumPy array (None for bool, complex or exotic dtypes)."""
    try:
        arr = tensor.detach().cpu().numpy()
    except (TypeError, RuntimeError):
        return None
    return np.ascontiguousarray(arr) if np.issubdtype(arr.dtype, np.integer) else None


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load the weights of a ``.pth``/``.pt``/``.ckpt``, ``.safetensors`` or ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable NumPy .npz file of arrays ({exc})") from exc
        return unwrap_state_dict(arrays, str(path))
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:
            raise BackendUnavailableError(
                f"reading {path.name} needs the 'safetensors' package: pip install 'dermsr[safetensors]'"
            ) from exc
        try:
            return unwrap_state_dict(load_file(str(path)), str(path))
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc

    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path}: the file is empty; expected a PyTorch checkpoint")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint: it is neither a zip archive (torch.save) nor a "
            f"pickle (it starts with {head!r})"
        )

    if head.startswith(b"PK\x03\x04") and _is_torchscript(path):
        raise UnsafeCheckpointError(
            f"{path}: refused to load: this is a TorchScript archive (torch.jit.save), a program "
            "whose stored code TorchScript runs, not a state dict of weights. Only plain weights "
            "are loaded; re-save them with torch.save(module.state_dict(), 'model.pth') or as "
            ".safetensors"
        )

    from .._extras import require

    require("torch", f"reading the PyTorch checkpoint {path.name}")
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unpickling_error(path, exc) from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    return unwrap_state_dict(obj, str(path))


def _is_torchscript(path: Path) -> bool:
    """Whether the zip archive at ``path`` holds TorchScript code (``code/`` and
    ``constants.pkl`` entries, which ``torch.save`` never writes)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False  # torch.load says what is wrong with it
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _unpickling_error(path: Path, exc: Exception) -> CheckpointError:
    """What torch.load(weights_only=True) refused, in our words: a pickle that names code to run
    (refused as unsafe) or one that is corrupt. torch's own text suggests loading with
    ``weights_only=False``, which would run that code, so it is not passed on."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return UnsafeCheckpointError(
            f"{path}: refused to load: the file is a pickle that needs to run code to unpickle "
            f"({found.group(1)}). Only plain tensor checkpoints are loaded; re-save the state "
            "dict with torch.save(model.state_dict())"
        )
    detail = re.search(r"Unsupported operand \d+|[^\n]*(?:truncated|EOF|MARK)[^\n]*", text)
    return CheckpointError(
        f"{path}: not a readable PyTorch checkpoint: the pickle inside is corrupt or not a "
        f"tensor checkpoint ({detail.group(0).strip() if detail else type(exc).__name__})"
    )
