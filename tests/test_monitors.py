"""Every nrt monitor through our adapter: it fits, detects a planted drop, reports codes, and round-trips."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from pydantic import ValidationError
from rasterio.crs import CRS

from catalog.encoding import CONFIRMED_CODES, Status
from scheduler.config import parse_monitor
from scheduler.monitors import (
    EXTRA_LAYERS,
    MonitorState,
    absorb,
    fit_monitor,
    is_anomalous,
    report_layers,
    residual_sigma,
)
from scheduler.state import TileState, load_state, save_state

SIZE = 12
# One configuration of each algorithm, for tests that must hold for every monitor.
EVERY_ALGORITHM = [
    {"algorithm": "iqr"},
    {"algorithm": "ccdc"},
    {"algorithm": "ewma"},
    {"algorithm": "cusum"},
    {"algorithm": "mosum", "h": 0.5},
    {"algorithm": "ccdc-nrt"},
]
HISTORY_END = dt.date(2022, 12, 31)
DROP_DATE = dt.datetime(2023, 6, 1)


def _cube(start: str, end: str, seed: int) -> xr.DataArray:
    """NDVI-like seasonal series with noise and 25 % cloud gaps; the top-left quarter drops on DROP_DATE."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq="5D")
    doy = times.dayofyear.to_numpy()[:, None, None]
    values = 0.8 + 0.05 * np.sin(2 * np.pi * (doy - 100) / 365.25) + rng.normal(0, 0.012, (len(times), SIZE, SIZE))
    dropped = (times >= DROP_DATE)[:, None, None] & _drop_mask()[None]
    values = np.where(dropped, 0.25 + rng.normal(0, 0.02, values.shape), values)
    values[rng.random(values.shape) < 0.25] = np.nan
    coords = {"time": times, "y": 5400000 - 20 * np.arange(SIZE) - 10, "x": 500000 + 20 * np.arange(SIZE) + 10}
    return xr.DataArray(values.astype(np.float32), dims=("time", "y", "x"), coords=coords)


def _drop_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[: SIZE // 2, : SIZE // 2] = True
    return mask


def _forest() -> np.ndarray:
    forest = np.ones((SIZE, SIZE), np.uint8)
    forest[-1, :] = 0  # a row outside the forest mask
    return forest


@pytest.mark.parametrize(
    "monitor",
    [
        {"algorithm": "iqr", "sensitivity": 2.5},
        {"algorithm": "ccdc"},
        {"algorithm": "ewma"},
        {"algorithm": "cusum"},
        {"algorithm": "mosum", "h": 0.5},
        {"algorithm": "iqr", "fit_method": "RIRLS"},
        {"algorithm": "ewma", "fit_method": "ROC", "screen_outliers": "none"},
        {"algorithm": "ccdc-nrt"},
        {"algorithm": "ccdc-nrt", "direction": "decrease", "calibration_days": 30},
    ],
    ids=lambda m: "-".join(str(v) for v in m.values()),
)
def test_monitor_detects_the_planted_drop(monitor: dict, tmp_path) -> None:
    cfg = parse_monitor(monitor)
    history = _cube("2021-01-01", "2022-12-31", seed=1)
    state = fit_monitor(cfg, history, _forest(), HISTORY_END + dt.timedelta(days=1))
    assert not state.empty
    monitoring = _cube("2023-01-01", "2023-12-31", seed=2)
    for i, time in enumerate(monitoring.time.values):
        absorb(state, monitoring.isel(time=i).values, pd.Timestamp(time).to_pydatetime())
        if i == len(monitoring.time) // 2:  # a save/load cycle mid-stream must not change anything
            tile = TileState("t", CRS.from_epsg(32633), Affine(20, 0, 500000, 0, -20, 5400000), state, {}, 0, None)
            save_state(tile, tmp_path / "s.nc")
            state = load_state(tmp_path / "s.nc").monitor
    layers = report_layers(state, cfg)
    status = layers["status"]
    drop = _drop_mask() & (_forest() == 1)
    confirmed = np.isin(status, CONFIRMED_CODES)
    assert confirmed[drop].mean() >= 0.95
    assert np.all(status[-1] == Status.NOT_MONITORED)
    detected = layers["date"][drop & confirmed].astype(int)
    drop_day = (DROP_DATE.date() - dt.date(1970, 1, 1)).days
    # Most detections date from the drop; a false break confirmed earlier in the same pixel keeps its date
    # (CuSum and MoSum confirm many false breaks: see docs/accuracy.md).
    on_time = ((detected >= drop_day - 5) & (detected <= drop_day + 60)).mean()
    assert on_time >= (0.8 if cfg.algorithm in ("cusum", "mosum") else 0.9)
    assert np.nanmedian(layers["magnitude"][drop & confirmed]) < -0.3
    assert np.all(np.isnan(layers["magnitude"][~confirmed & (status == Status.NONE)]))


@pytest.mark.parametrize(
    ("monitor", "field"),
    [
        ({"algorithm": "mosum", "h": 0.3}, "h"),
        ({"algorithm": "mosum", "sensitivity": 0.2}, "sensitivity"),
        ({"algorithm": "cusum", "sensitivity": 0}, "sensitivity"),
        ({"algorithm": "iqr", "boundary": 0}, "boundary"),
        ({"algorithm": "ewma", "lambda_": 1.5}, "lambda_"),
        ({"algorithm": "ccdc", "trend": False}, "CCDC-stable"),
        ({"algorithm": "ccdc-nrt", "window": 2, "min_changes": 3}, "min_changes"),
        ({"algorithm": "bfast"}, "algorithm"),
    ],
)
def test_monitor_parameters_are_validated(monitor: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_monitor(monitor)


def test_ccdc_screening_uses_green_and_swir() -> None:
    """CCDC's CCDC_RIRLS screening drops cloud-like observations (bright green, dark SWIR) from the fit."""
    history = _cube("2021-01-01", "2022-12-31", seed=3)
    rng = np.random.default_rng(4)
    # Real reflectances are noisy: a constant series would give RIRLS a zero scale and flag everything.
    green = xr.full_like(history, 0.05) + rng.normal(0, 0.003, history.shape)
    swir = xr.full_like(history, 0.18) + rng.normal(0, 0.005, history.shape)
    # Leaked clouds: NDVI depressed, green bright; the screening should keep them out of the fit.
    cloudy = np.zeros(history.shape, bool)
    cloudy[::9] = True
    history = history.where(~cloudy, 0.3)
    green = green.where(~cloudy, 0.4)
    swir = swir.where(~cloudy, 0.35)
    monitoring_start = HISTORY_END + dt.timedelta(days=1)
    screened = fit_monitor(
        parse_monitor({"algorithm": "ccdc", "screen_outliers": "CCDC_RIRLS"}),
        history,
        _forest(),
        monitoring_start,
        {"green": green, "swir16": swir},
    )
    plain = fit_monitor(parse_monitor({"algorithm": "ccdc"}), history, _forest(), monitoring_start)
    # Without screening the clouds inflate each pixel's RMSE; with it the RMSE stays near the 0.012 noise.
    assert np.nanmedian(screened.monitor.rmse) < 0.03 < np.nanmedian(plain.monitor.rmse)


def test_indices_from_reflectances() -> None:
    from scheduler.loading import compute_index

    bands = {
        "red": xr.DataArray(np.array([0.04, 0.0])),
        "nir": xr.DataArray(np.array([0.36, 0.0])),
        "blue": xr.DataArray(np.array([0.02, 0.0])),
        "swir16": xr.DataArray(np.array([0.18, 0.0])),
        "swir22": xr.DataArray(np.array([0.09, 0.0])),
    }
    np.testing.assert_allclose(compute_index("ndvi", bands).values[0], 0.8, rtol=1e-6)
    np.testing.assert_allclose(compute_index("ndmi", bands).values[0], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(compute_index("nbr", bands).values[0], 0.6, rtol=1e-6)
    np.testing.assert_allclose(compute_index("evi", bands).values[0], 2.5 * 0.32 / (0.36 + 0.24 - 0.15 + 1), rtol=1e-5)
    # 0 / 0 must become NaN, never inf: nrt's fit cannot take inf.
    for name in ("ndvi", "ndmi", "nbr"):
        assert np.isnan(compute_index(name, bands).values[1])


def _reference_absorb(state: MonitorState, array: np.ndarray, when: dt.datetime) -> None:
    """absorb as it was before its per-state caches: nrt's own predict and monitor, fences recomputed each time."""
    monitor = state.monitor
    array = np.where(np.isfinite(array), array, np.nan).astype(np.float64)
    prediction = monitor.predict(when)
    residuals = array - prediction
    valid = (monitor.mask == 1) & np.isfinite(array)
    with np.errstate(invalid="ignore", divide="ignore"):
        monitor.monitor(array=array, date=when)
    anomalous = valid & is_anomalous(monitor, residuals)
    extras = state.extras
    day = (when.date() - dt.date(1970, 1, 1)).days
    extras["first_date"][anomalous & (extras["run_count"] == 0)] = day
    extras["run_count"][anomalous] += 1
    extras["run_sum"][anomalous] += residuals[anomalous].astype(np.float32)
    score = np.abs(residuals) / residual_sigma(monitor)
    extras["run_score"][anomalous] += score[anomalous].astype(np.float32)
    silent = (monitor.mask == 3) & valid & (extras["run_count"] == 0)
    extras["first_date"][silent] = day
    extras["run_count"][silent] = 1
    extras["run_sum"][silent] = residuals[silent].astype(np.float32)
    extras["run_score"][silent] = score[silent].astype(np.float32)
    ended = valid & ~anomalous & (monitor.mask == 1)
    for name in EXTRA_LAYERS:
        extras[name][ended] = 0


def _assert_identical(ours: MonitorState, theirs: MonitorState) -> None:
    arrays = {k for k, v in vars(theirs.monitor).items() if isinstance(v, np.ndarray)}
    assert arrays == {k for k, v in vars(ours.monitor).items() if isinstance(v, np.ndarray)}
    for name in sorted(arrays):
        assert getattr(ours.monitor, name).tobytes() == getattr(theirs.monitor, name).tobytes(), name
    for name in EXTRA_LAYERS:
        assert ours.extras[name].tobytes() == theirs.extras[name].tobytes(), name


@pytest.mark.parametrize(
    "monitor",
    [m for m in EVERY_ALGORITHM if m["algorithm"] != "ccdc-nrt"],  # nrt's monitors (CCDC-NRT is absorbed whole)
    ids=lambda m: m["algorithm"],
)
def test_absorb_equals_plain_nrt_bit_for_bit(monitor: dict) -> None:
    """absorb's caches (float64 coefficients, fences, sigma) and sparse bookkeeping change no bit of the state."""
    cfg = parse_monitor(monitor)
    history = _cube("2021-01-01", "2022-12-31", seed=1)
    ours = fit_monitor(cfg, history, _forest(), HISTORY_END + dt.timedelta(days=1))
    theirs = copy.deepcopy(ours)
    monitoring = _cube("2023-01-01", "2023-12-31", seed=2)
    values = monitoring.values.copy()
    values[3, 0, 0] = np.inf  # infinities count as missing
    values[10, SIZE // 2 :, :] += 0.5  # a one-date spike: runs that start and end without a break
    for i, time in enumerate(monitoring.time.values):
        when = pd.Timestamp(time).to_pydatetime()
        absorb(ours, values[i], when)
        _reference_absorb(theirs, values[i], when)
        if i == 20:
            # A refit or restore replaces the fitted arrays: what absorb derived from them must follow.
            for state in (ours, theirs):
                spread = getattr(state.monitor, "q25", None)
                if spread is not None:
                    state.monitor.q25 = spread - 0.01
                state.monitor.beta = state.monitor.beta * np.float32(1.01)
    assert "predict" not in vars(ours.monitor) and "_update_process" not in vars(ours.monitor)
    assert (ours.extras["run_count"] > 0).any() and (ours.monitor.mask == 3).sum() >= 9  # runs and breaks happened
    _assert_identical(ours, theirs)
