"""Spatial checks on a tile's alerts: what one pixel's own series cannot tell apart."""

from __future__ import annotations

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
