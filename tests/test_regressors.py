"""Our design matrices are nrt's, bit for bit, at any date and setting."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from nrt.utils import build_regressors as nrt_build_regressors

from scheduler.regressors import build_regressors, date_regressors


def _random_dates(n: int, seed: int) -> np.ndarray:
    """Times from 2015 to 2031 to the second, a third of them at a Sentinel-2 pass time, leap days included."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 16 * 365 * 86_400, n)
    times = np.datetime64("2015-01-01T00:00:00", "s") + seconds.astype("timedelta64[s]")
    days = times.astype("datetime64[D]")
    times[::3] = days[::3] + np.timedelta64(10 * 3600 + 12 * 60, "s")
    extra = np.array(["2016-02-29T23:59:59", "2020-12-31T00:00:00", "2024-01-01T00:00:00"], dtype="datetime64[s]")
    return np.concatenate([times, extra])


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize(("trend", "order"), [(True, 3), (False, 2), (True, 0), (False, 1), (True, 4)])
def test_one_date_at_a_time_is_nrts_to_the_bit(trend: bool, order: int) -> None:
    for when in _random_dates(3000, seed=order + 10 * trend):
        want = nrt_build_regressors(pd.DatetimeIndex([when]), trend=trend, harmonic_order=order)
        _same_bits(build_regressors(np.array([when]), trend, order), want)
        _same_bits(date_regressors(np.datetime64(when, "ns"), trend, order), want)


@pytest.mark.parametrize("n", [1, 7, 139, 1000])
def test_a_history_is_nrts_to_the_bit(n: int) -> None:
    times = _random_dates(n, seed=n)[:n]
    want = nrt_build_regressors(pd.DatetimeIndex(times), trend=True, harmonic_order=3)
    _same_bits(build_regressors(times, True, 3), want)  # unsorted in: sorted, as nrt sorts them


def test_a_date_as_python_datetime_or_nanoseconds_gives_the_same_regressors() -> None:
    when = dt.datetime(2023, 6, 15, 10, 12)
    a = date_regressors(np.datetime64(when, "ns"), True, 3)
    assert not a.flags.writeable  # shared by every row block: nobody may change it
    _same_bits(build_regressors(np.array([np.datetime64(when)]), True, 3), a)
