"""The harmonic design matrices of the published models, one owner for the scheduler's fits and the catalog's plots.

Two conventions (catalog/series.py's ModelForm names them): "nrt", nrt.utils.build_regressors' bits computed on
numpy's datetime64 (checked bit for bit against nrt in tests/test_regressors.py), and "ccdcnrt", scheduler/ccdcnrt.py's
years of 365.25 days. numpy only: readers of the catalog need neither nrt nor the scheduler.
"""

from __future__ import annotations

import numpy as np

_NS_PER_DAY = 86_400 * 10**9
# nrt's trend origin is pd.Timestamp(1970): 1970 nanoseconds after the epoch, not the year 1970.
_TREND_ORIGIN_NS = 1970


def nrt_design(dates: np.ndarray, trend: bool, harmonic_order: int) -> np.ndarray:
    """Nrt's regressors of naive UTC datetime64 `dates` (any unit), in the given order: 1, t, cos k.., sin k..."""
    times = np.asarray(dates, dtype="datetime64[ns]")
    design = np.zeros((len(times), 1 + int(trend) + 2 * harmonic_order), dtype=float)
    design[:, 0] = 1
    if trend:
        design[:, 1] = (times.astype(np.int64) - _TREND_ORIGIN_NS) // _NS_PER_DAY
    if harmonic_order:
        decimal = _decimal_years(times)
        harmonics = np.empty((len(times), harmonic_order))
        for i in range(harmonic_order):
            harmonics[:, i] = 2 * np.pi * decimal * (i + 1)  # nrt's order of operations: the same rounding
        first = 1 + int(trend)
        design[:, first : first + 2 * harmonic_order] = np.concatenate([np.cos(harmonics), np.sin(harmonics)], 1)
    return design


def _decimal_years(times: np.ndarray) -> np.ndarray:
    """nrt.utils.datetimeIndex_to_decimal_dates: year + (t - 1 Jan) / (31 Dec - 1 Jan), as float64."""
    years = times.astype("datetime64[Y]")
    first_day = years.astype("datetime64[ns]")
    last_day = (years + 1).astype("datetime64[D]").astype("datetime64[ns]") - np.timedelta64(1, "D")
    return np.asarray(years.astype(np.int64) + 1970 + (times - first_day) / (last_day - first_day), dtype=float)


def ccdcnrt_design(years: np.ndarray, trend: bool, harmonic_order: int, origin: float = 0.0) -> np.ndarray:
    """CCDC-NRT's regressors of `years` (of 365.25 days since 1970): 1, t - origin, then cos/sin pairs per k."""
    years = np.asarray(years, dtype=np.float64)
    columns = [np.ones_like(years)]
    if trend:
        columns.append(years - origin)
    for k in range(1, harmonic_order + 1):
        angle = 2.0 * np.pi * k * years
        columns += [np.cos(angle), np.sin(angle)]
    return np.stack(columns, axis=-1).reshape(len(years), 1 + int(trend) + 2 * harmonic_order)
