"""CCDC-NRT's mechanisms against look-alikes (scheduler/ccdcnrt.py, scheduler/spatial.py), on hand-built series.

Each mechanism is switched on and off on the same data; the test asserts which pixels alert and how they are dated.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import xarray as xr

from scheduler.ccdcnrt import CCDCNRT
from scheduler.spatial import blur_halos, regional_median

MONITORING = dt.date(2023, 1, 1)
NOISE = 0.01


def _truth(times: pd.DatetimeIndex) -> np.ndarray:
    t = ((times - pd.Timestamp("1970-01-01")).total_seconds() / 86400 / 365.25).to_numpy()
    return 0.75 + 0.08 * np.cos(2 * np.pi * t) + 0.03 * np.sin(2 * np.pi * t)


def history(shape: tuple[int, int], seed: int = 0) -> xr.DataArray:
    """Two years of 8-day acquisitions of a seasonal forest NDVI with 0.01 noise on a (rows, cols) tile."""
    times = pd.date_range("2021-01-01", "2022-12-31", freq="8D")
    rng = np.random.default_rng(seed)
    data = _truth(times)[:, None, None] + rng.normal(0, NOISE, (len(times), *shape))
    return xr.DataArray(
        data, dims=("time", "y", "x"), coords={"time": times, "y": np.arange(shape[0]), "x": np.arange(shape[1])}
    )


def model(data: xr.DataArray, **kwargs: object) -> CCDCNRT:
    """A fitted CCDCNRT, armed by its history, with the given mechanisms (min_confidence 5 unless given)."""
    options = {"min_confidence": 5.0, "calibration_days": 0, "armed_by_history": True, "monitoring_start": MONITORING}
    options |= kwargs
    fitted = CCDCNRT(**options)  # type: ignore[arg-type]
    fitted.fit(data)
    return fitted


def feed(fitted: CCDCNRT, drops: list[np.ndarray | float], seed: int = 1) -> list[dt.datetime]:
    """Absorb one acquisition every 5 days from the monitoring start: the forest's value minus drops[i]."""
    rng = np.random.default_rng(seed)
    dates = [dt.datetime(2023, 1, 3) + dt.timedelta(days=5 * i) for i in range(len(drops))]
    for when, drop in zip(dates, drops, strict=True):
        value = _truth(pd.DatetimeIndex([when]))[0] + rng.normal(0, NOISE, fitted.mask.shape) - drop
        fitted.monitor(value, when)
    return dates


def day(when: dt.datetime) -> int:
    return (when.date() - dt.date(1970, 1, 1)).days


def test_armed_by_history_alerts_a_disturbance_on_the_first_day_of_monitoring() -> None:
    data = history((1, 2))
    drops = [np.array([[0.0, 0.4]])] * 4
    armed = model(data, armed_by_history=True)
    dates = feed(armed, drops)
    assert armed.confirmation_date[0].tolist() == [0, day(dates[2])]
    assert armed.first_detection_date[0, 1] == day(dates[0])
    # SEPAL's rule: a pixel must first show a stable window in monitoring, so a cut from day one is never alerted.
    unarmed = model(data, armed_by_history=False)
    feed(unarmed, drops)
    assert unarmed.confirmation_date[0].tolist() == [0, 0]


def test_a_pixel_changing_at_the_end_of_its_history_is_not_armed() -> None:
    data = history((1, 2))
    data[-3:, 0, 1] -= 0.4  # cleared in the last three history acquisitions
    fitted = model(data, armed_by_history=True, history_outliers=4.0)
    assert fitted.armed[0].tolist() == [1, 0]


def test_history_outliers_keep_clouds_out_of_the_rmse() -> None:
    data = history((1, 2))
    data[::9, 0, :] -= 0.45  # a missed cloud every 72 days, in both pixels
    plain = model(data)
    screened = model(data, history_outliers=4.0)
    assert plain.rmse.min() > 0.08  # the clouds inflate the spread ...
    assert screened.rmse.max() < 0.015  # ... which screening brings back to the noise (0.01)
    # Three stable acquisitions (a cloud ended the history), then a clearing 0.2 deep: hidden behind the inflated RMSE.
    drop = [0.0] * 3 + [np.array([[0.0, 0.2]])] * 3
    feed(plain, drop)
    feed(screened, drop)
    assert plain.confirmation_date[0].tolist() == [0, 0]
    assert screened.confirmation_date[0, 0] == 0 and screened.confirmation_date[0, 1] > 0


def test_regional_median_removes_smoke_and_keeps_a_clearing_under_it() -> None:
    shape = (64, 64)
    data = history(shape)
    smoke = np.full(shape, 0.1)  # ten sigmas of regional haze over the whole tile
    cut = smoke.copy()
    cut[30:34, 30:34] += 0.4
    drops = [smoke, cut, cut, cut]
    plain = model(data)
    feed(plain, drops)
    assert (plain.confirmation_date > 0).mean() > 0.99  # every pixel alerts on the smoke
    regional = model(data, regional_block=32)
    feed(regional, drops)
    alerted = regional.confirmation_date > 0
    assert alerted[30:34, 30:34].all() and alerted.sum() == 16


def test_regional_median_is_the_block_level_where_blocks_are_flat() -> None:
    values = np.zeros((64, 64))
    values[:, 32:] = 1.0
    values[:8, :8] = np.nan
    level = regional_median(values, 32)
    assert level[0, 0] == 0.0 and level[-1, -1] == 1.0
    assert np.all(np.diff(level[10]) >= 0)  # interpolated between block centres, never overshooting
    sparse = np.full((32, 32), np.nan)
    sparse[0, 0] = 5.0  # a block with under a quarter of its pixels has no level of its own
    assert regional_median(sparse, 32).max() == 0.0


def test_a_passing_cloud_before_a_clearing_does_not_date_the_alert() -> None:
    shape = (12, 12)
    data = history(shape)
    cloud = np.zeros(shape)
    cloud[2:10, 2:10] = 0.5  # a cloud over the clearing and the forest around it, the day before the cut
    cut = np.zeros(shape)
    cut[4:8, 4:8] = 0.4
    drops = [0.0, 0.0, 0.0, cloud, cut, cut, cut]
    dates = feed(fitted := model(data, outlier_neighbours=2), drops)
    alerted = fitted.confirmation_date > 0
    assert alerted[4:8, 4:8].all() and alerted.sum() == 16
    # Every pixel of the clearing, inner ones too, is dated by the cut, not by the cloud.
    assert set(fitted.first_detection_date[alerted].tolist()) == {day(dates[4])}
    plain = model(data, outlier_neighbours=0)
    feed(plain, drops)
    assert set(plain.first_detection_date[alerted].tolist()) == {day(dates[3])}


def test_blur_halos_are_the_small_changes_beside_a_large_one() -> None:
    magnitude = np.zeros((7, 7))
    magnitude[2:5, 2:5] = 0.5  # a clearing
    magnitude[2:5, 4] = 0.3  # its edge column keeps most of the drop
    magnitude[1, 1:6] = 0.08  # the forest above it gets a sixth: blur
    magnitude[6, 6] = 0.08  # a small change alone is no halo
    alert = magnitude > 0
    halos = blur_halos(alert, magnitude, 0.5)
    assert np.argwhere(halos).tolist() == [[1, c] for c in range(1, 6)]
    assert not blur_halos(alert, magnitude, 0.0).any()


def test_one_bad_observation_never_confirms_with_every_mechanism_on() -> None:
    shape = (8, 8)
    data = history(shape)
    outlier = np.full(shape, 0.6)
    fitted = model(
        data, armed_by_history=True, history_outliers=4.0, regional_block=8, outlier_neighbours=2, min_confidence=8.0
    )
    feed(fitted, [0.0, outlier, 0.0, 0.0, 0.0, np.where(np.eye(8) > 0, 0.6, 0.0), 0.0, 0.0])
    assert not fitted.confirmation_date.any()
