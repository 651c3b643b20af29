"""Spatial checks on a tile's alerts: what one pixel's own series cannot tell apart."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

# The 8 neighbours and the pixel itself.
NEIGHBOURHOOD = np.ones((3, 3), dtype=bool)


def blur_halos(alert: np.ndarray, magnitude: np.ndarray, ratio: float) -> np.ndarray:
    """Alert pixels whose change is below `ratio` x the largest change among their alerted neighbours.

    The sensor's blur and co-registration jitter spread a clearing's drop a fraction of a pixel into the forest
    beside it: that forest changes for good, but by a small part of its neighbour's drop (a 0.5 px PSF leaves
    about a sixth), while the clearing's own edge pixels keep most of it. `magnitude` is the size of each pixel's
    change (>= 0, NaN or 0 where there is none); ratio 0 finds none.
    """
    if ratio <= 0 or not alert.any():
        return np.zeros(alert.shape, dtype=bool)
    size = np.where(alert, np.nan_to_num(np.abs(magnitude), nan=0.0), 0.0)
    largest = ndimage.maximum_filter(size, footprint=NEIGHBOURHOOD, mode="constant", cval=0.0)
    return alert & (size < ratio * largest)


def regional_median(values: np.ndarray, block: int, min_share: float = 0.25) -> np.ndarray:
    """Per-pixel regional level of a 2-D array with NaNs: block medians, bilinearly interpolated between centres.

    A block with fewer than min_share of its pixels valid has no level of its own (0, the model's expectation).
    """
    rows, cols = values.shape
    n_r, n_c = -(-rows // block), -(-cols // block)
    padded = np.full((n_r * block, n_c * block), np.nan)
    padded[:rows, :cols] = values
    blocks = padded.reshape(n_r, block, n_c, block).transpose(0, 2, 1, 3).reshape(n_r, n_c, block * block)
    valid = np.isfinite(blocks).sum(axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        level = np.nanmedian(blocks, axis=2)
    level = np.where(valid >= min_share * block * block, level, 0.0)
    # Block centres at (i + 0.5) * block - 0.5; pixels between them are interpolated, beyond them held.
    r = np.clip((np.arange(rows) + 0.5) / block - 0.5, 0, n_r - 1)
    c = np.clip((np.arange(cols) + 0.5) / block - 0.5, 0, n_c - 1)
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    r1, c1 = np.minimum(r0 + 1, n_r - 1), np.minimum(c0 + 1, n_c - 1)
    fr, fc = (r - r0)[:, None], (c - c0)[None, :]
    top = level[r0][:, c0] * (1 - fc) + level[r0][:, c1] * fc
    bottom = level[r1][:, c0] * (1 - fc) + level[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr
