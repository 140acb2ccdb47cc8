"""Optional dependencies: which ``pip install 'dermsr[...]'`` extra brings each one.

``pip install dermsr`` enhances with the built-in models on NCNN and nothing more heavy;
PyTorch and everything built on it are extras. :func:`require` turns a missing one into a
one-line :class:`~dermsr.errors.BackendUnavailableError` naming the exact command to run.

>>> require("dermsr_no_such_extra", "this")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dermsr.errors.UnknownNameError: no extra named 'dermsr_no_such_extra'...
>>> extra_for("lpips")
'metrics'
"""

from __future__ import annotations

from .errors import BackendUnavailableError, UnknownNameError
from .machine import missing_modules

__all__ = ["EXTRAS", "extra_for", "install_hint", "missing", "require"]

#: Import names each extra provides (the distributions are in pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnx": ("onnxruntime", "onnx", "onnxscript", "torch"),
    "ncnn": ("ncnn",),
    "executorch": ("executorch", "torch"),
    "metrics": ("lpips", "matplotlib", "torchvision", "torch"),
    "train": ("lpips", "matplotlib", "torchvision", "torch"),
    "export": ("pnnx", "onnx", "onnxscript", "torch"),
    "safetensors": ("safetensors",),
    "ray": ("ray",),
    "spandrel": ("spandrel", "torch"),
}


def install_hint(extra: str) -> str:
    """``pip install 'dermsr[extra]'``"""
    return f"pip install 'dermsr[{extra}]'"


def extra_for(module: str) -> str | None:
    """The smallest extra that installs the top-level ``module`` (None if no extra does)."""
    top = module.split(".")[0]
    for extra, modules in sorted(EXTRAS.items(), key=lambda kv: len(kv[1])):
        if top in modules:
            return extra
    return None


def missing(extra: str) -> list[str]:
    """The import names of ``extra`` that are not installed (found without importing them)."""
    if extra not in EXTRAS:
        raise UnknownNameError(f"no extra named {extra!r}; extras: {', '.join(EXTRAS)}")
    return missing_modules(EXTRAS[extra])


def require(extra: str, what: str) -> None:
    """Raise a one-line :class:`BackendUnavailableError` if ``extra`` is not fully installed."""
    gone = missing(extra)
    if gone:
        names = ", ".join(repr(m) for m in gone)
        raise BackendUnavailableError(f"{what} needs {names}, not installed: {install_hint(extra)}")
