"""Numba kernels for the fit: nrt's serial hot spots, parallel over pixels, with the same results bit for bit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np


def usable_threads(threads: int) -> int:
    """`threads` clamped to what numba's pool has (set_num_threads refuses more than NUMBA_NUM_THREADS)."""
    return max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))


@contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Let numba's parallel loops in this thread use `threads` threads, and restore the previous count after."""
    previous = numba.get_num_threads()
    numba.set_num_threads(usable_threads(threads))
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)


@numba.njit(parallel=True, cache=True)
def _nan_percentiles_2d(values: np.ndarray, percentiles: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    out = np.empty((percentiles.shape[0], values.shape[1]))
    for i in numba.prange(values.shape[1]):
        # The very call nrt's nan_percentile_axis0 makes per pixel, so the values are the same bit for bit.
        out[:, i] = np.nanpercentile(values[:, i], percentiles)
    return out


def nan_percentile_axis0(values: np.ndarray, percentiles: np.ndarray) -> np.ndarray:
    """nrt.stats.nan_percentile_axis0 (np.nanpercentile along axis 0), parallel over the other axes."""
    flat = values.reshape((values.shape[0], -1))
    # numba's nanpercentile takes the percentiles as float64 anyway: one compiled signature per values dtype.
    out = _nan_percentiles_2d(flat, np.asarray(percentiles, dtype=np.float64))
    return out.reshape((out.shape[0], *values.shape[1:]))
