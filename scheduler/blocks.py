"""Fit a tile in row blocks: split the tile grid into rows, then join the blocks' monitors into the tile's one."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from affine import Affine

from scheduler.config import ComputeConfig
from scheduler.errors import StateError
from scheduler.grid import Tile
from scheduler.monitors import MonitorState


def row_blocks(height: int, rows: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most `rows` rows covering `height`."""
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def block_rows(compute: ComputeConfig, tile: Tile, dates: int) -> int:
    """Rows per fit block: fit_block_rows, fewer when a block would hold more than fit_block_values values."""
    return max(1, min(compute.fit_block_rows, compute.fit_block_values // max(1, tile.width * dates)))


def tile_rows(tile: Tile, start: int, stop: int) -> Tile:
    """The rows start..stop of a tile as a tile of its own (same id, so messages still name the tile)."""
    return Tile(
        id=tile.id,
        row=tile.row,
        col=tile.col,
        width=tile.width,
        height=stop - start,
        transform=tile.transform @ Affine.translation(0, start),
        crs=tile.crs,
    )


def _per_pixel(value: Any) -> bool:
    """2-D (y, x) or 3-D (k, y, x) arrays are per-pixel state; the state file stores nothing else as arrays."""
    return isinstance(value, np.ndarray) and value.ndim in (2, 3)


def _filler(like: np.ndarray, rows: int) -> np.ndarray:
    """What a block that could not be fitted holds for an array the others have: NaN, or 0 for integers."""
    shape = (*like.shape[:-2], rows, like.shape[-1])
    fill = np.nan if np.issubdtype(like.dtype, np.floating) else 0
    return np.full(shape, fill, dtype=like.dtype)


def join_blocks(blocks: list[MonitorState]) -> MonitorState:
    """One monitor from row blocks fitted on their own (nrt fits every pixel independently of the others)."""
    if len(blocks) == 1:
        return blocks[0]
    fitted = [b for b in blocks if not b.empty]
    template = fitted[0] if fitted else blocks[0]
    monitor = copy.copy(template.monitor)
    heights = [len(b.monitor.y) for b in blocks]
    for name, value in vars(template.monitor).items():
        if name == "y":
            setattr(monitor, name, np.concatenate([np.asarray(b.monitor.y) for b in blocks]))
        elif _per_pixel(value):
            parts = []
            for block, rows in zip(blocks, heights, strict=True):
                part = getattr(block.monitor, name, None)
                parts.append(part if _per_pixel(part) else _filler(value, rows))
            setattr(monitor, name, np.concatenate(parts, axis=-2))
        elif name != "x":
            for block in fitted:
                other = getattr(block.monitor, name, None)
                if not (other is value or other == value or (_is_nan(other) and _is_nan(value))):
                    raise StateError(f"row blocks disagree on monitor attribute {name}: {value!r} != {other!r}")
    extras = {name: np.concatenate([b.extras[name] for b in blocks], axis=-2) for name in template.extras}
    return MonitorState(monitor, extras, empty=not fitted)


def _is_nan(value: Any) -> bool:
    """NaN scalars are equal for joining purposes."""
    return isinstance(value, float) and value != value
