"""Enhancement as a data-pipeline step: a torchvision-style transform and a dataset wrapper.

:class:`Enhance` super-resolves one image and gives back the same kind: a PIL image (mode
kept), an HWC/HW NumPy array (dtype kept), or a CHW/NCHW torch tensor (dtype and device
kept; a ``torchvision.tv_tensors.Image`` stays one). It is a plain callable, so it composes
with ``torchvision.transforms.v2.Compose`` (and the v1 ``Compose``) anywhere an image
transform goes. Given several inputs, as ``v2.Compose`` passes ``(image, label)`` samples, it
enhances the first and passes the rest through unchanged.

:class:`EnhancedDataset` wraps an existing map-style dataset whose items are images or
``(image, label, ...)`` tuples / dicts, and enhances the image of each item on the fly.

Both hold an :class:`~dermsr.Enhancer`, which pickles without its runtime session and opens
a new one in each process on first use, so they work in ``DataLoader`` workers under both
the ``fork`` and the ``spawn`` start methods. Give workers ``threads=1`` (several workers
each using every core only slow each other down).

Importing this module imports no runtime; torch and torchvision are imported only when a
tensor comes in.

>>> import numpy as np
>>> enhance = Enhance(threads=1)
>>> enhance(np.zeros((6, 5, 3), np.uint8)).shape
(24, 20, 3)
>>> image, label = enhance(np.zeros((6, 5), np.uint16), 7)
>>> image.shape, image.dtype.name, label
((24, 20), 'uint16', 7)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .enhance import Enhancer
from .errors import InputError

__all__ = ["PIL_MODES", "Enhance", "EnhancedDataset", "enhance_image"]

#: PIL modes :class:`Enhance` accepts and gives back unchanged (others: convert first).
PIL_MODES = ("RGB", "RGBA", "L", "I;16", "I;16L", "I;16B")


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "size")


def _tv_tensor_kind(obj: Any) -> str | None:
    """``"Image"`` for a torchvision Image tv_tensor, another class name for other tv_tensors."""
    if type(obj).__module__.startswith("torchvision.tv_tensors"):
        from torchvision import tv_tensors

        return "Image" if isinstance(obj, tv_tensors.Image) else type(obj).__name__
    return None


def _enhance_pil(enhancer: Enhancer, image: Any) -> Any:
    from PIL import Image

    mode = image.mode
    if mode not in PIL_MODES:
        raise InputError(
            f"PIL image mode {mode!r} is not supported; expected one of {PIL_MODES} "
            f"(convert first, e.g. image.convert('RGB'))"
        )
    arr = np.asarray(image)
    if mode.startswith("I;16"):
        out = enhancer.enhance(arr.astype(np.uint16))  # native byte order in, stored order out
        return Image.fromarray(out.astype(arr.dtype))
    return Image.fromarray(enhancer.enhance(arr))


def enhance_image(enhancer: Enhancer, image: Any) -> Any:
    """Super-resolve ``image`` with ``enhancer`` and give back the same kind of object.

    PIL images keep their mode (one of :data:`PIL_MODES`); arrays and tensors are handled by
    :meth:`Enhancer.enhance`; a ``tv_tensors.Image`` comes back as a ``tv_tensors.Image``.
    Other tv_tensors (masks, boxes, videos) are refused: the ×scale change of size would
    silently misalign them.
    """
    if _is_pil(image):
        return _enhance_pil(enhancer, image)
    kind = _tv_tensor_kind(image)
    if kind == "Image":
        import torch
        from torchvision import tv_tensors

        return tv_tensors.wrap(enhancer.enhance(image.as_subclass(torch.Tensor)), like=image)
    if kind is not None:
        raise InputError(
            f"Enhance got a torchvision {kind}; it only enhances images (PIL, NumPy, tensor or "
            "tv_tensors.Image) and does not rescale masks, boxes or videos"
        )
    if isinstance(image, np.ndarray) or type(image).__module__.startswith("torch"):
        return enhancer.enhance(image)
    raise InputError(
        "Enhance expects a PIL image, an HWC/HW NumPy array or a CHW/NCHW torch tensor, "
        f"got {type(image).__name__}"
    )


def _make_enhancer(enhancer: Enhancer | None, kwargs: dict[str, Any]) -> Enhancer:
    if enhancer is None:
        return Enhancer(**kwargs)
    if not isinstance(enhancer, Enhancer):
        raise InputError(f"enhancer must be a dermsr.Enhancer or None, got {type(enhancer).__name__}")
    if kwargs:
        raise InputError(f"pass either an Enhancer or Enhancer arguments, not both (got {sorted(kwargs)})")
    return enhancer


class Enhance:
    """Transform that super-resolves an image (×scale), keeping its kind.

    ``Enhance(enhancer)`` uses an existing :class:`~dermsr.Enhancer`; ``Enhance(**kwargs)``
    builds one with those arguments (``model``, ``backend``, ``device``, ``tile``,
    ``threads``, ...).

    >>> import numpy as np
    >>> Enhance(threads=1)(np.zeros((4, 4, 3), np.uint8)).shape
    (16, 16, 3)
    """

    def __init__(self, enhancer: Enhancer | None = None, **enhancer_kwargs: Any) -> None:
        self.enhancer = _make_enhancer(enhancer, enhancer_kwargs)

    def __call__(self, *inputs: Any) -> Any:
        if not inputs:
            raise InputError("Enhance needs an image")
        first = enhance_image(self.enhancer, inputs[0])
        return first if len(inputs) == 1 else (first, *inputs[1:])

    def __repr__(self) -> str:
        return f"Enhance({self.enhancer!r})"


class EnhancedDataset:
    """A map-style dataset whose images are enhanced when an item is fetched.

    Parameters
    ----------
    dataset:
        Anything with ``__getitem__`` and ``__len__`` (a torchvision dataset, a list of
        ``(image, label)`` tuples, ...). Its items may be an image, a tuple/list holding the
        image at position ``key``, or a dict holding it under ``key``.
    enhance:
        An :class:`Enhance`, an :class:`~dermsr.Enhancer`, or None to build one from
        ``enhancer_kwargs``.
    key:
        Where the image sits in each item (default 0, the first element of a tuple).

    >>> import numpy as np
    >>> ds = EnhancedDataset([(np.zeros((4, 4, 3), np.uint8), 1)], threads=1)
    >>> image, label = ds[0]
    >>> len(ds), image.shape, label
    (1, (16, 16, 3), 1)
    """

    def __init__(
        self,
        dataset: Any,
        enhance: Enhance | Enhancer | None = None,
        *,
        key: int | str = 0,
        **enhancer_kwargs: Any,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise InputError(
                f"dataset must be map-style (have __getitem__ and __len__), got {type(dataset).__name__}"
            )
        if not isinstance(enhance, Enhance):
            enhance = Enhance(enhance, **enhancer_kwargs)
        elif enhancer_kwargs:
            raise InputError("pass either an Enhance or Enhancer arguments, not both")
        self.dataset = dataset
        self.enhance = enhance
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        item = self.dataset[index]
        run = self.enhance.enhancer
        if isinstance(item, Mapping):
            if self.key not in item:
                raise InputError(f"dataset item has no key {self.key!r}; keys: {sorted(map(str, item))}")
            out = dict(item)
            out[self.key] = enhance_image(run, item[self.key])
            return out
        if isinstance(item, (tuple, list)):
            if not isinstance(self.key, int) or not -len(item) <= self.key < len(item):
                raise InputError(f"dataset item is a {len(item)}-tuple; key {self.key!r} is not a position in it")
            parts = list(item)
            parts[self.key] = enhance_image(run, item[self.key])
            if isinstance(item, list):
                return parts
            return type(item)(*parts) if hasattr(item, "_fields") else tuple(parts)
        return enhance_image(run, item)

    def __repr__(self) -> str:
        return f"EnhancedDataset({type(self.dataset).__name__} of {len(self)}, {self.enhance!r}, key={self.key!r})"
