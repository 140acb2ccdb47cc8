"""Enhancement: the Enhancer, the shared tiling engine and the backend registry."""

from .enhancer import Enhancer, check_output
from .tiling import Tile, TilePlan, plan_tiles, run_tiled

__all__ = ["Enhancer", "Tile", "TilePlan", "check_output", "plan_tiles", "run_tiled"]
