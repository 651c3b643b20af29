"""The fit's parallel kernels give nrt's values, whatever the thread count: bit for bit, or to rounding for OLS."""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from nrt.fit_methods import ols
from nrt.monitor.iqr import IQR
from nrt.stats import nan_percentile_axis0 as nrt_nan_percentile_axis0

from scheduler.config import parse_monitor
from scheduler.kernels import nan_ols, nan_percentile_axis0, numba_threads, sorting_network, usable_threads
from scheduler.monitors import fit_monitor


def _residuals(seed: int) -> np.ndarray:
    """Residual-like float32 values with NaN gaps, all-NaN, single-value, constant and infinite pixels."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 0.05, (37, 9, 11)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[:, 0, 0] = np.nan
    values[:, 0, 1] = np.nan
    values[5, 0, 1] = 0.25
    values[:, 0, 2] = 0.0
    values[3, 0, 3] = np.inf
    values[:, 0, 4] = -0.0
    return values


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("percentiles", [[75, 25], [0, 50, 100], [12.5]])
def test_nan_percentile_axis0_is_nrts_bit_for_bit(threads: int, percentiles: list[float]) -> None:
    values = _residuals(1)
    with numba_threads(threads):
        ours = nan_percentile_axis0(values, np.array(percentiles))
    theirs = nrt_nan_percentile_axis0(values, np.array(percentiles))
    assert ours.shape == (len(percentiles), 9, 11)
    assert ours.tobytes() == theirs.tobytes()
    assert np.isnan(ours[:, 0, 0]).all()  # no observation
    assert (ours[:, 0, 1] == np.float32(0.25)).all()  # one observation


@pytest.mark.parametrize("length", [1, 2, 3, 5, 16, 17, 37, 64, 100, 139, 256, 300])
def test_the_sorting_network_sorts(length: int) -> None:
    pairs, size = sorting_network(length)
    assert size >= length and (pairs < size).all() and (pairs[:, 0] < pairs[:, 1]).all()
    rng = np.random.default_rng(length)
    values = np.full((size, 200), np.inf)
    values[:length] = rng.integers(0, 5, (length, 200))  # many ties
    values[:length, :100] = rng.normal(size=(length, 100))
    for low, high in pairs:
        values[low], values[high] = np.minimum(values[low], values[high]), np.maximum(values[low], values[high])
    assert np.array_equal(values[:length], np.sort(values[:length], axis=0))


@pytest.mark.parametrize("steps", [2, 7, 139, 200])
def test_nan_percentiles_of_long_series_are_nrts_bit_for_bit(steps: int) -> None:
    rng = np.random.default_rng(steps)
    values = rng.normal(0, 0.05, (steps, 3, 45)).astype(np.float32)  # 135 pixels: blocks of 32 and a rest
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 1, :3] = np.round(values[:, 1, :3], 1)  # ties
    values[:, 2, 0] = np.nan
    values[0, 2, 1] = -np.inf
    percentiles = np.array([75, 25])
    ours = nan_percentile_axis0(values, percentiles)
    assert ours.tobytes() == nrt_nan_percentile_axis0(values, percentiles).tobytes()
    assert steps == 2 or np.isfinite(ours[:, 0]).all()  # two dates: some pixels have none
    where = rng.random((3, 45)) < 0.6
    some = nan_percentile_axis0(values, percentiles, where=where)
    assert some[:, where].tobytes() == ours[:, where].tobytes()
    assert (some[:, ~where] == 0).all()


def test_numba_threads_restores_the_count_and_clamps() -> None:
    before = numba.get_num_threads()
    with numba_threads(10_000) as used:
        assert used == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
    assert usable_threads(0) == 1


def _history(seed: int) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", "2022-12-31", freq="6D")
    doy = times.dayofyear.to_numpy()[:, None, None]
    values = 0.7 + 0.1 * np.sin(2 * np.pi * doy / 365.25) + rng.normal(0, 0.02, (len(times), 16, 20))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:-4, 5, 5] = np.nan  # too short a series: nrt masks the pixel, its quartiles are 0
    coords = {"time": times, "y": np.arange(16.0), "x": np.arange(20.0)}
    return xr.DataArray(values.astype(np.float32), dims=("time", "y", "x"), coords=coords)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fit_method", ["OLS", "RIRLS"])
def test_iqr_fit_equals_nrts_own(threads: int, fit_method: str) -> None:
    history = _history(3)
    forest = np.ones((16, 20), np.uint8)
    forest[0, :5] = 0
    cfg = parse_monitor({"algorithm": "iqr", "sensitivity": 2.5, "fit_method": fit_method})
    ours = fit_monitor(cfg, history, forest, dt.date(2023, 1, 1), threads=threads).monitor
    theirs = IQR(mask=forest.copy(), trend=cfg.trend, harmonic_order=cfg.harmonic_order, sensitivity=2.5, boundary=3)
    theirs.fit(history, method=fit_method)
    for name in ("beta", "q25", "q75", "mask"):
        mine, nrts = getattr(ours, name), getattr(theirs, name)
        assert mine.dtype == nrts.dtype
        if fit_method == "OLS" and name != "mask":  # our normal equations sum in another order than nrt's BLAS
            np.testing.assert_allclose(mine, nrts, rtol=1e-6, atol=1e-9, err_msg=name)
        else:
            assert mine.tobytes() == nrts.tobytes(), name
    assert float(np.nanmax(ours.q75 - ours.q25)) > 0.01  # real spreads, not zeros
    assert ours.mask[5, 5] not in (0, 1) and ours.q25[5, 5] == 0
    assert list(vars(ours)) == list(vars(theirs))  # same attributes in the same order: the same state file


def test_nan_ols_is_nrts_ols_to_rounding() -> None:
    history = _history(5)
    design = IQR(trend=True, harmonic_order=3).build_design_matrix(history, trend=True, harmonic_order=3)
    flat = history.values.reshape(len(history.time), -1)
    columns = np.flatnonzero(np.count_nonzero(~np.isnan(flat), axis=0) >= 12)[1:]  # not the first: any column
    beta, spread = nan_ols(design, flat, columns, np.array([75, 25]))
    nrt_beta, nrt_residuals = ols(design.astype(np.float64), flat[:, columns].astype(np.float64))
    np.testing.assert_allclose(beta, nrt_beta, rtol=1e-9, atol=1e-12)
    # nrt stores the residuals as float32, then takes their percentiles (IQR.fit).
    nrt_spread = nrt_nan_percentile_axis0(nrt_residuals.astype(np.float32), np.array([75, 25]))
    np.testing.assert_allclose(spread, nrt_spread, rtol=1e-5, atol=1e-7)
    assert (spread[0] > spread[1]).all() and np.median(spread[0] - spread[1]) > 0.01  # real spreads, not zeros
    assert np.abs(beta[0]).min() > 0.1  # the intercept of an index around 0.7: real fits, not zeros


def test_nan_ols_refuses_a_singular_system_as_nrt_does() -> None:
    history = _history(5)
    design = IQR(trend=True, harmonic_order=3).build_design_matrix(history, trend=True, harmonic_order=3)
    flat = history.values.reshape(len(history.time), -1).copy()
    flat[:, 7] = np.nan  # no observation: all-zero normal equations
    with pytest.raises(np.linalg.LinAlgError):
        nan_ols(design, flat, np.array([3, 7]), np.array([75, 25]))
