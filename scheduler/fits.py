"""IQR's fit with our parallel kernels: nrt's IQR.fit, step by step, without its full-size float64 copies."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numba
import numpy as np
import xarray as xr

from scheduler.kernels import nan_ols, nan_percentile_axis0
from scheduler.pixel_codes import MONITORED, SHORT

if TYPE_CHECKING:  # nrt is imported through scheduler/nrt_boundary.py only
    from nrt.monitor.iqr import IQR


def ols_iqr(monitor: IQR, design: np.ndarray, history: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQR.fit with method OLS and no screening: (beta, q25, q75) as nrt stores them; masks short series."""
    beta, fitted, spread = _ols(monitor, design, history)
    quartiles = np.zeros((2, monitor.mask.size))  # nrt's residuals are 0 where it did not fit: so are these
    quartiles[:, fitted] = spread
    q75, q25 = quartiles.reshape((2, *monitor.mask.shape))
    return beta, q25, q75


def iqr_quartiles(residuals: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q25, q75) of nrt's fit residuals, in parallel; 0 wherever nrt did not fit (mask != 1), as nrt's are."""
    q75, q25 = nan_percentile_axis0(residuals, np.array([75, 25]), where=mask == MONITORED)
    return q25, q75


def _ols(monitor: IQR, design: np.ndarray, history: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BaseNrt._fit(method='OLS'): (beta as nrt stores it, the fitted pixels' indices, their residuals' q75, q25)."""
    times = history.time.values
    if not np.all(times[1:] >= times[:-1]):
        raise ValueError("Time dimension of dataarray has to be sorted chronologically.")
    values = np.asarray(history.values)
    flat = values.reshape((values.shape[0], -1))
    if monitor.mask is None:
        monitor.mask = np.ones(values.shape[1:], dtype=np.uint8)
    fitted = np.flatnonzero(monitor.mask == MONITORED)
    # nrt's _mask_short_series: fewer observations than 1.5x the regressors are not fitted.
    short = _valid_counts(flat, fitted) < design.shape[1] * 1.5
    if short.any():
        monitor.mask.flat[fitted[short]] = SHORT
        warnings.warn(
            f"{np.count_nonzero(short)} time-series were shorter than 1.5x the number of regressors and were masked.",
            stacklevel=2,
        )
        fitted = fitted[~short]
    if not fitted.size:
        raise ValueError(f"There are no time-series with sufficient ({int(design.shape[1] * 1.5)}) data points.")
    beta_flat, spread = nan_ols(design, flat, fitted, np.array([75, 25]))
    beta = np.zeros((design.shape[1], *values.shape[1:]), dtype=np.float32)
    beta.reshape((design.shape[1], -1))[:, fitted] = beta_flat
    return beta, fitted, spread


@numba.njit(parallel=True, cache=True)
def _valid_counts(values: np.ndarray, columns: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    counts = np.zeros(columns.shape[0], dtype=np.int64)
    for i in numba.prange(columns.shape[0]):
        for t in range(values.shape[0]):
            counts[i] += not np.isnan(values[t, columns[i]])
    return counts
