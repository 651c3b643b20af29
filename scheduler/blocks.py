"""Row blocks of a tile: fitted apart then joined, or absorbing side by side on threads, then joined."""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from affine import Affine

from scheduler.config import ComputeConfig
from scheduler.errors import StateError
from scheduler.grid import Tile
from scheduler.monitors import MonitorState, absorb, monitor_of
from scheduler.pixel_codes import MONITORED


def row_blocks(height: int, rows: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most `rows` rows covering `height`."""
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def block_rows(compute: ComputeConfig, tile: Tile, dates: int) -> int:
    """Rows per fit block: fit_block_rows, fewer when a block would hold more than fit_block_values values."""
    return max(1, min(compute.fit_block_rows, compute.fit_block_values // max(1, tile.width * dates)))


def load_rows(compute: ComputeConfig, tile: Tile, dates: int) -> int:
    """Rows per load: at most load_block_values' worth (at least a fit block), in loads of equal size.

    Every load opens each asset of each date once more, so loads are as few as the bound allows; equal loads keep
    the largest, which sets the memory, as small as that number of loads can.
    """
    most = max(block_rows(compute, tile, dates), compute.load_block_values // max(1, tile.width * dates))
    return math.ceil(tile.height / math.ceil(tile.height / most))


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


def _filler(like: np.ndarray, mask: np.ndarray, donors: dict[int, np.ndarray]) -> np.ndarray:
    """What a block that could not be fitted holds for an array the others have.

    At each of its pixels, the value nrt gave the fitted blocks' pixels of the same mask code (non-forest, short
    series) where that value is one constant, as a whole-tile fit would give it; NaN (0 for integers) otherwise.
    """
    shape = (*like.shape[:-2], *mask.shape)
    fill = np.nan if np.issubdtype(like.dtype, np.floating) else 0
    out = np.full(shape, fill, dtype=like.dtype)
    for code, value in donors.items():
        out[..., mask == code] = value[..., None]
    return out


def _constants(name: str, fitted: list[MonitorState]) -> dict[int, np.ndarray]:
    """Attribute `name`'s value per mask code of unmonitored pixels in the fitted blocks, where it is one constant."""
    found: dict[int, np.ndarray | None] = {}
    for block in fitted:
        value, mask = getattr(block.monitor, name, None), getattr(block.monitor, "mask", None)
        if not _per_pixel(value) or not _per_pixel(mask) or mask.shape != value.shape[-2:]:
            continue
        nan_equal = value.dtype.kind == "f"
        for code in np.unique(mask):
            if code == MONITORED:  # each pixel its own fit
                continue
            pixels = value[..., mask == code]
            first = pixels[..., 0]
            same = np.array_equal(pixels, np.broadcast_to(first[..., None], pixels.shape), equal_nan=nan_equal)
            known = found.get(int(code), first)
            agree = known is not None and np.array_equal(known, first, equal_nan=nan_equal)
            found[int(code)] = first if same and agree else None
    return {code: value for code, value in found.items() if value is not None}


def _block_mask(block: MonitorState, rows: int, width: int) -> np.ndarray:
    """A block's mask codes (an unfitted block still has its forest mask); all non-forest if it has none."""
    mask = getattr(block.monitor, "mask", None)
    return mask if _per_pixel(mask) and mask.shape == (rows, width) else np.zeros((rows, width), dtype=np.uint8)


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
            parts, donors = [], None
            for block, rows in zip(blocks, heights, strict=True):
                part = getattr(block.monitor, name, None)
                if not _per_pixel(part) and name in ZERO_PADDED:
                    part = np.zeros((*value.shape[:-2], rows, value.shape[-1]), dtype=value.dtype)  # window 0
                elif not _per_pixel(part):
                    donors = _constants(name, fitted) if donors is None else donors
                    part = _filler(value, _block_mask(block, rows, value.shape[-1]), donors)
                parts.append(part)
            setattr(monitor, name, np.concatenate(_padded(name, parts), axis=-2))
        elif name != "x":
            for block in fitted:
                other = getattr(block.monitor, name, None)
                if not (other is value or other == value or (_is_nan(other) and _is_nan(value))):
                    raise StateError(f"row blocks disagree on monitor attribute {name}: {value!r} != {other!r}")
    extras = {name: np.concatenate([b.extras[name] for b in blocks], axis=-2) for name in template.extras}
    return MonitorState(monitor, extras, empty=not fitted, series=template.series)


# Per-pixel arrays whose leading length is the block's largest, padded at the end with zeros as nrt pads them:
# MoSum's window holds each pixel's last `winsize` residuals and zeros beyond (nrt.utils_efp._mosum_init_window);
# a pixel nrt did not fit has a window of 0, so all zeros.
ZERO_PADDED = {"window"}


def _padded(name: str, parts: list[np.ndarray]) -> list[np.ndarray]:
    """The blocks' arrays of one attribute, zero-padded along the first axis to a common length where nrt pads."""
    lengths = {part.shape[0] for part in parts}
    if name not in ZERO_PADDED or len(lengths) == 1:
        return parts
    size = max(lengths)
    return [np.pad(part, [(0, size - part.shape[0])] + [(0, 0)] * (part.ndim - 1)) for part in parts]


def _is_nan(value: Any) -> bool:
    """NaN scalars are equal for joining purposes."""
    return isinstance(value, float) and value != value


def split_state(state: MonitorState, parts: int) -> list[tuple[int, int, MonitorState]]:
    """Row blocks of a state as views of its arrays, each able to absorb on its own thread (pixels are independent).

    After absorbing, `join_blocks` of the blocks is the tile's state again (nrt rebinds some arrays it updates).
    """
    height = state.monitor.mask.shape[-2]
    rows = -(-height // max(1, parts))
    blocks = []
    for top, bottom in row_blocks(height, rows):
        monitor = copy.copy(state.monitor)
        for name, value in vars(state.monitor).items():
            if name == "y":
                setattr(monitor, name, np.asarray(value)[top:bottom])
            elif _per_pixel(value):
                setattr(monitor, name, value[..., top:bottom, :])
        extras = {name: value[top:bottom] for name, value in state.extras.items()}
        blocks.append((top, bottom, MonitorState(monitor, extras, empty=state.empty, series=state.series)))
    return blocks


def absorb_all(
    state: MonitorState, acquisitions: Sequence[tuple[np.ndarray, dt.datetime]], threads: int
) -> MonitorState:
    """Absorb acquisitions in date order; with threads, row blocks of the tile absorb side by side.

    nrt's monitor() is numpy over the whole tile on one core; row blocks on a thread pool use every core (numpy
    releases the GIL) and give the same arrays. A family that keeps per-date bookkeeping of its own (CCDC-NRT) says
    so with `Monitor.splittable`: it stays whole.
    """
    if threads <= 1 or state.empty or not monitor_of(state).splittable or len(acquisitions) == 0:
        for array, when in acquisitions:
            absorb(state, array, when)
        return state
    blocks = split_state(state, threads)
    with ThreadPoolExecutor(max_workers=len(blocks)) as pool:
        for array, when in acquisitions:
            done = [pool.submit(absorb, block, array[top:bottom], when) for top, bottom, block in blocks]
            for future in done:
                future.result()
    return join_blocks([block for _, _, block in blocks])
