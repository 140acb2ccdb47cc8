"""One exception hierarchy for dermsr.

Every class derives from :class:`DermsrError` *and* from the builtin exception a caller
would naturally catch, so ``except ValueError`` keeps working for bad input and
``except ImportError`` for a missing optional runtime.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CheckpointError",
    "DermsrError",
    "ExportError",
    "FidelityError",
    "ImageReadError",
    "ImageWriteError",
    "InputError",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "UnsupportedModelError",
    "WeightsNotFoundError",
    "WriteError",
]


class DermsrError(Exception):
    """Base class of every error raised on purpose by dermsr."""


class InputError(DermsrError, ValueError):
    """An argument or image is not what the call expects (message says expected vs got)."""


class UnsupportedModelError(InputError):
    """A runtime cannot run this model's architecture."""


class UnknownNameError(DermsrError, KeyError):
    """A model, backend or preset name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


class CheckpointError(DermsrError, ValueError):
    """A weights file that cannot be read or does not describe a supported network."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that needs arbitrary code to unpickle; refused."""


class WeightsNotFoundError(DermsrError, FileNotFoundError):
    """Weights a computation needs (e.g. LPIPS's AlexNet) are nowhere to be found; says how to provide them."""


class ImageReadError(DermsrError, OSError):
    """An image file that is missing, unreadable, truncated or not an image."""


class WriteError(DermsrError, OSError):
    """A file dermsr writes (an image, a manifest, an export) could not be written; the message
    names the file. Files written atomically are left untouched."""


class ImageWriteError(WriteError):
    """An image that could not be written (the destination is left untouched)."""


class BackendUnavailableError(DermsrError, ImportError):
    """A runtime that is not installed or cannot run here; says which extra to install."""


class BackendError(DermsrError, RuntimeError):
    """A runtime failed or returned garbage (non-finite or far out-of-range values)."""


class ExportError(DermsrError, RuntimeError):
    """Converting the model to another runtime's format failed."""


class FidelityError(ExportError):
    """A reduced-precision artifact whose output strays too far from fp32 on held-out images;
    refused (never cached or written). The message says what was measured and the threshold."""
