"""Numba kernels for the fit: nrt's serial hot spots, parallel over pixels, with the same results bit for bit."""

from __future__ import annotations

import functools
import math
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


# Pixels sorted side by side: one sorting-network step is a min and a max over this many pixels (SIMD lanes).
LANES = 32


@functools.lru_cache(maxsize=32)
def sorting_network(length: int) -> tuple[np.ndarray, int]:
    """A bitonic sorting network (ascending pairs) for `length` values padded with +inf to a power of two.

    Pairs that only ever compare padding are dropped: what is left sorts `length` values in
    O(length log^2 length) branch-free steps. Returns (pairs, padded length).
    """
    size = 1 << max(1, (length - 1).bit_length())
    pairs = []
    span = 2
    while span <= size:
        # Every pair ascending: the merge's first stage compares mirrored positions of each block.
        pairs += [(first + i, first + span - 1 - i) for first in range(0, size, span) for i in range(span // 2)]
        step = span // 4
        while step >= 1:
            pairs += [(first + i, first + i + step) for first in range(0, size, 2 * step) for i in range(step)]
            step //= 2
        span *= 2
    # Follow where the +inf padding can be: a pair whose upper place holds +inf leaves both places as they are.
    real = [place < length for place in range(size)]
    kept = []
    for low, high in pairs:
        if real[high]:
            kept.append((low, high))
            real[low], real[high] = True, real[low]
    return np.array(kept, dtype=np.int64).reshape(-1, 2), size


@numba.njit(cache=True, error_model="numpy")
def _block_percentiles(
    block: np.ndarray, width: int, percentiles: np.ndarray, pairs: np.ndarray, size: int, out: np.ndarray, first: int
) -> None:  # pragma: no cover - numba
    """out[:, first + lane] = np.nanpercentile(block[:, lane], percentiles) for the block's `width` pixels."""
    steps = block.shape[0]
    lanes = np.full((size, LANES), np.inf, dtype=block.dtype)  # NaN sorts last, as +inf
    valid = np.zeros(LANES, dtype=np.int64)
    unusual = np.zeros(LANES, dtype=np.bool_)
    for t in range(steps):
        row = lanes[t]
        for lane in range(width):
            value = block[t, lane]
            missing = np.isnan(value)
            valid[lane] += not missing
            # Infinities and signed zeros order differently in min/max than in numba's selection.
            unusual[lane] |= np.isinf(value) | (value == 0)
            row[lane] = np.inf if missing else value
    for step in range(pairs.shape[0]):
        low, high = lanes[pairs[step, 0]], lanes[pairs[step, 1]]
        for lane in range(LANES):
            a, b = low[lane], high[lane]
            low[lane] = min(a, b)
            high[lane] = max(a, b)
    for lane in range(width):
        n = valid[lane]
        if n < 2 or unusual[lane]:
            # The very call nrt's nan_percentile_axis0 makes per pixel.
            out[:, first + lane] = np.nanpercentile(block[:, lane], percentiles)
            continue
        for k in range(percentiles.shape[0]):
            # numba's nanpercentile interpolation (linear), on the same two order statistics.
            rank = 1 + (n - 1) * np.true_divide(percentiles[k], 100.0)
            below = math.floor(rank)
            weight = rank - below
            lower = np.float64(lanes[int(below) - 1, lane])
            upper = np.float64(lanes[min(int(below), n - 1), lane])
            out[k, first + lane] = lower * (1 - weight) + upper * weight


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _nan_percentiles_2d(
    values: np.ndarray, columns: np.ndarray, percentiles: np.ndarray, pairs: np.ndarray, size: int
) -> np.ndarray:  # pragma: no cover - numba
    steps, count = values.shape[0], columns.shape[0]
    out = np.empty((percentiles.shape[0], count))
    for block in numba.prange((count + LANES - 1) // LANES):
        first = block * LANES
        width = min(count, first + LANES) - first
        gathered = np.empty((steps, LANES), dtype=values.dtype)
        for t in range(steps):
            for lane in range(width):
                gathered[t, lane] = values[t, columns[first + lane]]
        _block_percentiles(gathered, width, percentiles, pairs, size, out, first)
    return out


def nan_percentile_axis0(values: np.ndarray, percentiles: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """nrt.stats.nan_percentile_axis0 (np.nanpercentile along axis 0) bit for bit, parallel over the other axes.

    Each block of pixels is sorted at once through a sorting network (branch-free min/max over the pixels, 10x
    numba's per-pixel selection at 139 dates); pixels with infinities, zeros or fewer than two values fall back
    to numba's selection. `where` (a boolean array of the other axes' shape): only those pixels, the rest 0.
    """
    flat = values.reshape((values.shape[0], -1))
    columns = np.arange(flat.shape[1]) if where is None else np.flatnonzero(where)
    pairs, size = sorting_network(max(1, flat.shape[0]))
    # numba's nanpercentile takes the percentiles as float64 anyway: one compiled signature per values dtype.
    found = _nan_percentiles_2d(flat, columns, np.asarray(percentiles, dtype=np.float64), pairs, size)
    if where is None:
        out = found
    else:
        out = np.zeros((found.shape[0], flat.shape[1]))
        out[:, columns] = found
    return out.reshape((out.shape[0], *values.shape[1:]))


@numba.njit(cache=True, error_model="numpy")
def _solve(matrix: np.ndarray, rhs: np.ndarray) -> bool:  # pragma: no cover - numba
    """Solve matrix @ x = rhs in place (Gaussian elimination with partial pivoting, LAPACK gesv's method)."""
    size = rhs.shape[0]
    for col in range(size):
        pivot = col
        for row in range(col + 1, size):
            if abs(matrix[row, col]) > abs(matrix[pivot, col]):
                pivot = row
        if matrix[pivot, col] == 0:
            return False
        if pivot != col:
            for k in range(size):
                matrix[col, k], matrix[pivot, k] = matrix[pivot, k], matrix[col, k]
            rhs[col], rhs[pivot] = rhs[pivot], rhs[col]
        for row in range(col + 1, size):
            factor = matrix[row, col] / matrix[col, col]
            for k in range(col + 1, size):
                matrix[row, k] -= factor * matrix[col, k]
            rhs[row] -= factor * rhs[col]
    for col in range(size - 1, -1, -1):
        total = rhs[col]
        for k in range(col + 1, size):
            total -= matrix[col, k] * rhs[k]
        rhs[col] = total / matrix[col, col]
    return True


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _nan_ols(
    design: np.ndarray,
    products: np.ndarray,
    values: np.ndarray,
    columns: np.ndarray,
    beta: np.ndarray,
    percentiles: np.ndarray,
    pairs: np.ndarray,
    size: int,
    spread: np.ndarray,
) -> int:  # pragma: no cover - numba
    steps, terms = design.shape
    count = columns.shape[0]
    across = np.ascontiguousarray(design.T)
    blocks = (count + LANES - 1) // LANES
    singular = np.full(blocks, -1)  # per block: a scalar assigned in prange would stay private to its thread
    for block in numba.prange(blocks):
        first = block * LANES
        width = min(count, first + LANES) - first
        loaded = np.full((steps, LANES), np.nan)
        for t in range(steps):
            for lane in range(width):
                loaded[t, lane] = values[t, columns[first + lane]]
        # Branch-free: clouds make the gaps unpredictable.
        observed = (loaded == loaded).astype(np.float64)
        zeroed = np.where(observed > 0, loaded, 0.0)
        # Every pixel's normal equations in the block at once, as two small matrix products (BLAS).
        gram = np.dot(products, observed)  # (terms * terms, lanes): sum over dates of x_a x_c where observed
        moment = np.dot(across, zeroed)  # (terms, lanes): sum over dates of x_a y
        solved = np.empty((terms, LANES))
        matrix = np.empty((terms, terms))
        rhs = np.empty(terms)
        for lane in range(LANES):
            if lane >= width:
                solved[:, lane] = 0.0
                continue
            for a in range(terms):
                rhs[a] = moment[a, lane]
                for c in range(terms):
                    matrix[a, c] = gram[a * terms + c, lane]
            if not _solve(matrix, rhs):
                singular[block] = first + lane
                rhs[:] = np.nan
            solved[:, lane] = rhs
            beta[:, first + lane] = rhs
        fitted = np.dot(design, solved)
        residuals = np.empty((steps, LANES), dtype=np.float32)  # as nrt stores them, before its percentiles
        for t in range(steps):
            for lane in range(LANES):
                residuals[t, lane] = fitted[t, lane] - loaded[t, lane]
        _block_percentiles(residuals, width, percentiles, pairs, size, spread, first)
    return singular.max() if blocks else -1


def nan_ols(
    design: np.ndarray, values: np.ndarray, columns: np.ndarray, percentiles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The OLS fit of `values`' `columns` (as nrt's nanlstsq) and their residuals' percentiles, block by block.

    The normal equations per pixel, NaN skipped, as nrt's nanlstsq; of the residuals only their percentiles are
    kept (what IQR keeps of them), so that a tile's residuals never all live at once.

    `values`: (time, pixels) as loaded (float32 is read as float64, like nrt's copy). Returns beta (terms, n)
    float64 and the percentiles (len(percentiles), n) of the float32 residuals, as nan_percentile_axis0 gives them.
    Equal to nrt's to rounding: the sums run in another order than its BLAS calls. An exactly singular system
    raises numpy's LinAlgError, as nrt's solve does.
    """
    design = np.ascontiguousarray(design, dtype=np.float64)
    products = np.ascontiguousarray((design[:, :, None] * design[:, None, :]).reshape(design.shape[0], -1).T)
    beta = np.empty((design.shape[1], columns.shape[0]))
    percentiles = np.asarray(percentiles, dtype=np.float64)
    spread = np.empty((percentiles.shape[0], columns.shape[0]))
    pairs, size = sorting_network(max(1, design.shape[0]))
    singular = _nan_ols(design, products, values, columns, beta, percentiles, pairs, size, spread)
    if singular >= 0:
        raise np.linalg.LinAlgError(f"Matrix is singular to machine precision (pixel {columns[singular]})")
    return beta, spread
