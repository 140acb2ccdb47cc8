"""Fine-tune or train SRVGGNetCompact on a folder of HR images (``dermsr train``).

Paired LR/HR patches are made on the fly by a degradation (a ``dermsr.degrade`` preset or
any callable), the validation split is by image, and checkpoints are ordinary
Real-ESRGAN-style files that :func:`dermsr.models.load_model` and every backend accept.
See ``docs/training.md``.
"""

from .config import TrainConfig, parse_loss_spec
from .data import Degradation, PairSampler, Split, list_images, resolve_degradation, split_images
from .loop import TrainResult, learning_rate, load_checkpoint, save_weights, train

__all__ = [
    "Degradation",
    "PairSampler",
    "Split",
    "TrainConfig",
    "TrainResult",
    "learning_rate",
    "list_images",
    "load_checkpoint",
    "parse_loss_spec",
    "resolve_degradation",
    "save_weights",
    "split_images",
    "train",
]
