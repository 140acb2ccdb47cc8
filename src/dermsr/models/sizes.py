"""Input sizes a network accepts: spandrel's size requirements, runtime-free.

SRVGGNetCompact and RRDBNet take any size (:data:`ANY_SIZE`); some spandrel architectures need
a minimum side, sides that are multiples of a number, or square inputs. The
:class:`~dermsr.Enhancer` pads every input it runs to what the network accepts and crops the
output back (:func:`dermsr.enhance.tiling.pad_to_size`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError

__all__ = ["ANY_SIZE", "AnySizeNetwork", "SizeRequirements"]


@dataclass(frozen=True)
class SizeRequirements:
    """Input sizes a network accepts (spandrel's ``size_requirements``): sides of at least
    ``minimum`` pixels, multiples of ``multiple_of``, and equal when ``square``.

    The :class:`~dermsr.Enhancer` pads each input it runs up to the nearest accepted size
    (bottom and right; reflected, then replicated where reflection runs out, as spandrel pads)
    and crops the output back, so any image size runs.

    >>> SizeRequirements(minimum=16, multiple_of=8).padding(21, 3)
    (3, 13)
    >>> SizeRequirements().none
    True
    """

    minimum: int = 0
    multiple_of: int = 1
    square: bool = False

    def __post_init__(self) -> None:
        for name, lo in (("minimum", 0), ("multiple_of", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise CheckpointError(f"size requirement {name} must be an int >= {lo}, got {value!r}")

    @property
    def none(self) -> bool:
        """Whether every size is accepted as is."""
        return self.minimum <= 1 and self.multiple_of == 1 and not self.square

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns to add to a ``height``×``width`` input (bottom, right)."""
        m = self.multiple_of
        h = -(-max(height, self.minimum) // m) * m
        w = -(-max(width, self.minimum) // m) * m
        if self.square:
            h = w = max(h, w)
        return h - height, w - width

    def to_dict(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "multiple_of": self.multiple_of, "square": self.square}


#: What SRVGGNetCompact and RRDBNet accept: any size.
ANY_SIZE = SizeRequirements()


class AnySizeNetwork:
    """What the fully convolutional built-in architectures share: any input size, and tiles may
    start anywhere (:class:`NetworkConfig`'s ``size_requirements`` and ``tile_align``)."""

    @property
    def size_requirements(self) -> SizeRequirements:
        return ANY_SIZE

    @property
    def tile_align(self) -> int:
        return 1
