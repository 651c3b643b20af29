"""nrt's design matrices (nrt.utils.build_regressors), the same bits without pandas' date assembly.

nrt turns dates into decimal years by building each year's first and last day with `pd.to_datetime` from a dict of
columns: ~2 ms a call, paid for every date an update absorbs and every row block a fit fits, holding the GIL. Here
the same arithmetic runs on numpy's datetime64 (the operations pandas runs underneath), checked bit for bit against
nrt in tests/test_regressors.py.
"""

from __future__ import annotations

import functools

import numpy as np

_NS_PER_DAY = 86_400 * 10**9
# nrt's trend origin is pd.Timestamp(1970): 1970 nanoseconds after the epoch, not the year 1970.
_TREND_ORIGIN_NS = 1970


def build_regressors(dates: np.ndarray, trend: bool = True, harmonic_order: int = 3) -> np.ndarray:
    """nrt.utils.build_regressors for naive UTC datetime64 `dates` (any unit): (len(dates), 1 + trend + 2 order)."""
    times = np.sort(np.asarray(dates, dtype="datetime64[ns]"))
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


@functools.lru_cache(maxsize=256)
def date_regressors(naive: np.datetime64, trend: bool, harmonic_order: int) -> np.ndarray:
    """The regressors of one date (BaseNrt._regressors), shared read-only by every row block and tile of that date."""
    regressors = build_regressors(np.array([naive], dtype="datetime64[ns]"), trend, harmonic_order)
    regressors.flags.writeable = False
    return regressors
