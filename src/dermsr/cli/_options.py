"""Option parsers shared by several subcommands (one definition each).

>>> parse_tile("auto"), parse_tile("none"), parse_tile("0"), parse_tile("256")
('auto', None, None, 256)
"""

from __future__ import annotations

from ..errors import InputError

__all__ = ["TILE_HELP", "parse_tile"]

TILE_HELP = ("tile side in input pixels, 'auto' (default: whole image up to the model's auto tile, 512 px "
             "for SRVGGNetCompact, 256 for RRDBNet) or 'none'/0 (whole image)")


def parse_tile(value: str) -> int | str | None:
    """``--tile``: ``auto``; ``none`` or ``0`` (no tiling); or a positive integer."""
    text = str(value).strip()
    if text.lower() == "auto":
        return "auto"
    if text.lower() == "none" or text == "0":
        return None
    try:
        tile = int(text)
    except ValueError:
        tile = 0
    if tile < 1:
        raise InputError(f"--tile expects a positive integer, 'auto' or 'none', got {value!r}")
    return tile
