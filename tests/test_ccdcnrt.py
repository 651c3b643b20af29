"""CCDCNRT: SEPAL's CCDC-NRT rules as an incremental monitor, on hand-built pixel series."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scheduler.ccdcnrt import CCDCNRT
from scheduler.errors import NotFittedError

START = dt.date(2023, 1, 1)  # monitoring_start: the day after the history ends
YEAR = dt.timedelta(days=365.25)
CHANGE, INCREASE = 10.0, -10.0  # deltas in rmse units: obs = model(t - 1 year) - delta * rmse
# One letter per acquisition: S stable, C drop, I increase, . no observation.
CODES = {"S": 0.0, "C": CHANGE, "I": INCREASE, ".": np.nan}


def D(i: int) -> dt.datetime:
    """The i-th acquisition of the default schedule: every 10 days from START (i <= 9 is calibration)."""
    return dt.datetime(2023, 1, 1) + dt.timedelta(days=10 * i)


def at(offset: int) -> dt.datetime:
    """The acquisition offset days after START."""
    return dt.datetime(2023, 1, 1) + dt.timedelta(days=offset)


def day(when: dt.datetime | dt.date) -> int:
    """Days since 1970-01-01, the date layers' encoding."""
    value = when.date() if isinstance(when, dt.datetime) else when
    return (value - dt.date(1970, 1, 1)).days


SCHEDULE = [D(i) for i in range(30)]


def history(n_pix: int, clear: Sequence[int | None] | None = None, seed: int = 0) -> xr.DataArray:
    """Three years of 8-day acquisitions, seasonal + trend + 0.01 noise; clear[i] limits pixel i's clear dates."""
    times = pd.date_range("2020-01-01", "2022-12-31", freq="8D")
    t = ((times - pd.Timestamp("1970-01-01")).total_seconds() / 86400 / 365.25).to_numpy()
    truth = 0.7 + 0.002 * (t - 52) + 0.1 * np.cos(2 * np.pi * t) + 0.05 * np.sin(2 * np.pi * t)
    truth += 0.02 * np.cos(4 * np.pi * t)
    rng = np.random.default_rng(seed)
    data = truth[:, None] + rng.normal(0, 0.01, (len(times), n_pix))
    for i, n in enumerate(clear or []):
        if n is not None:
            data[n:, i] = np.nan
    return xr.DataArray(
        data[:, None, :], dims=("time", "y", "x"), coords={"time": times, "y": [0.5], "x": np.arange(n_pix) + 0.5}
    )


def fitted(n_pix: int, mask: np.ndarray | None = None, **kwargs: object) -> CCDCNRT:
    """A monitor fitted on history(n_pix), monitoring from START."""
    model = CCDCNRT(mask, monitoring_start=START, **kwargs)
    model.fit(history(n_pix))
    return model


def deltas(pattern: str | Sequence[float]) -> list[float]:
    """A pixel's series in rmse units from a letter pattern or a list of numbers."""
    return [CODES[c] for c in pattern] if isinstance(pattern, str) else [float(v) for v in pattern]


def feed(model: CCDCNRT, dates: Sequence[dt.datetime], pixels: Sequence[str | Sequence[float]]) -> None:
    """Absorb one acquisition per date; pixel j's value is its model one year earlier minus delta * rmse."""
    table = np.array([deltas(p) for p in pixels], dtype=float).T
    assert table.shape == (len(dates), len(pixels))
    for when, row in zip(dates, table, strict=True):
        obs = model.predict(when - YEAR)[0] - row * model.rmse[0]
        model.monitor(obs[None, :], when)


def stage(model: CCDCNRT) -> list[int]:
    """The alert stage of every pixel."""
    return model.alert_stage()[0].tolist()


def layer(model: CCDCNRT, name: str) -> list:
    """One output layer as a list over pixels."""
    return model.layers()[name][0].tolist()


def dates(*items: dt.datetime | int) -> list[int]:
    """Expected date layer values (0 = none)."""
    return [item if isinstance(item, int) else day(item) for item in items]


def design_matrix(t: np.ndarray) -> np.ndarray:
    """The documented model's regressors at t (years since 1970): 1, t, cos/sin(2 pi k t) for k = 1..3."""
    return np.column_stack([np.ones_like(t), t] + [f(2 * np.pi * k * t) for k in (1, 2, 3) for f in (np.cos, np.sin)])


# --- defaults and the model fit ---------------------------------------------------------------------------------


def test_defaults_match_sepal() -> None:
    model = CCDCNRT()
    assert (model.harmonic_order, model.trend, model.min_confidence) == (3, True, 5.0)
    assert (model.window, model.min_changes, model.calibration_days, model.monitoring_days) == (3, 3, 91, 61)
    assert model.must_be_confirmed_in_monitoring and model.must_be_stable_before_change and model.must_stay_changed
    assert model.direction == "both" and model.monitoring_start is None


def test_fit_recovers_known_coefficients_on_noiseless_series() -> None:
    times = pd.DatetimeIndex(sorted(pd.Timestamp("2019-03-01") + pd.to_timedelta(np.arange(0, 1400, 9), "D")))
    t = ((times - pd.Timestamp("1970-01-01")).total_seconds() / 86400 / 365.25).to_numpy()
    coefs = np.array(
        [[0.9, -0.004, 0.12, 0.05, -0.03, 0.02, 0.01, -0.005], [-1.5, 0.04, 0.2, -0.1, 0.0, 0.03, 0.02, 0.0]]
    )  # c0, c1, (a_k, b_k) for k = 1..3, per pixel
    design = design_matrix(t)
    data = design @ coefs.T
    data[::3, 0] = np.nan  # each pixel has its own gaps
    data[1::5, 1] = np.nan
    model = CCDCNRT()
    model.fit(xr.DataArray(data[:, None, :], dims=("time", "y", "x"), coords={"time": times}))
    np.testing.assert_allclose(model.beta[:, 0, :], coefs.T, atol=1e-8)
    assert np.all(model.rmse < 1e-6)
    when = dt.datetime(2024, 7, 1, 12)
    row = design_matrix(np.array([(when - dt.datetime(1970, 1, 1)).total_seconds() / 86400 / 365.25]))[0]
    np.testing.assert_allclose(model.predict(when)[0], coefs @ row, atol=1e-9)
    assert model.monitoring_start_day == day(times[-1]) + 1  # derived: the day after the history
    assert model.history_observation_count[0].tolist() == [
        int(np.isfinite(data[:, 0]).sum()),
        int(np.isfinite(data[:, 1]).sum()),
    ]


def test_fit_matches_per_pixel_least_squares_and_rmse() -> None:
    model = fitted(3)
    da = history(3)
    t = ((da.time.to_index() - pd.Timestamp("1970-01-01")).total_seconds() / 86400 / 365.25).to_numpy()
    design = design_matrix(t)
    for i in range(3):
        y = da.values[:, 0, i]
        coef, ssr, *_ = np.linalg.lstsq(design, y, rcond=None)
        np.testing.assert_allclose(model.beta[:, 0, i], coef, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(model.rmse[0, i], np.sqrt(ssr[0] / (len(y) - 8)), rtol=1e-5)
    assert np.all((model.rmse > 0.008) & (model.rmse < 0.012))


def test_too_few_history_observations_and_mask_zero_are_not_monitored() -> None:
    # 8 coefficients need 12 clear observations (1.5 x 8): 11 is too few.
    da = history(4, clear=[None, 11, 12, None])
    mask = np.array([[1, 1, 1, 0]], dtype=np.uint8)
    model = CCDCNRT(mask, monitoring_start=START)
    model.fit(da)
    assert model.mask[0].tolist() == [1, 4, 1, 0]
    assert np.isnan(model.rmse[0, [1, 3]]).all() and np.isfinite(model.rmse[0, [0, 2]]).all()
    assert np.isnan(model.predict(D(0))[0, [1, 3]]).all()
    drop = np.zeros((1, 4))  # from ~0.7 to 0: far beyond 5 rmse
    for i in range(15):
        model.monitor(drop if i >= 10 else model.predict(D(i) - YEAR), D(i))  # NaN where not fitted
    assert layer(model, "confirmation_date") == dates(D(12), 0, D(12), 0)
    assert layer(model, "monitoring_observation_count") == [5, 0, 5, 0]
    assert layer(model, "calibration_observation_count") == [10, 0, 10, 0]
    assert np.isnan(layer(model, "confidence")[1]) and np.isnan(layer(model, "confidence")[3])
    assert stage(model) == [3, 0, 3, 0]
    # Without the trend there are 7 coefficients: 10.5 rounds up to 11 clear observations.
    model = CCDCNRT(trend=False, monitoring_start=START)
    model.fit(history(2, clear=[10, 11]))
    assert model.mask[0].tolist() == [4, 1]


# --- windows, confidence, stages --------------------------------------------------------------------------------


def test_drop_in_monitoring_confirms_with_exact_dates_counts_and_stages() -> None:
    model = fitted(4)
    pixels = ["S" * 15 + "C" * 15, "S" * 15 + "C" + "S" * 14, "S" * 15 + "CC" + "S" * 13, "S" * 30]
    expected_stages = {14: [0, 0, 0, 0], 15: [1, 1, 1, 0], 16: [2, 0, 2, 0], 17: [3, 0, 0, 0], 29: [3, 0, 0, 0]}
    for i, when in enumerate(SCHEDULE):
        feed(model, [when], [p[i] for p in pixels])
        if i in expected_stages:
            assert stage(model) == expected_stages[i], i
        if i == 17:
            assert layer(model, "last_detection_date")[0] == day(D(17))
            assert layer(model, "detection_count")[0] == 3
    assert layer(model, "first_detection_date") == dates(D(15), 0, 0, 0)
    assert layer(model, "confirmation_date") == dates(D(17), 0, 0, 0)
    assert layer(model, "last_detection_date") == dates(D(29), 0, 0, 0)
    # The single outlier and the two outliers (not 3 of 3) leave no alert; stable windows keep coming.
    assert layer(model, "last_stable_date") == dates(D(14), D(29), D(29), D(29))
    assert layer(model, "detection_count") == [15, 0, 0, 0]
    assert layer(model, "monitoring_observation_count") == [20] * 4  # D(10) .. D(29)
    assert layer(model, "calibration_observation_count") == [10] * 4  # D(0) .. D(9): first 91 days
    confidence, difference = layer(model, "confidence"), layer(model, "difference")
    assert confidence[0] == pytest.approx(CHANGE, rel=1e-5)
    assert difference[0] == pytest.approx(CHANGE * float(model.rmse[0, 0]), rel=1e-5)  # positive: index dropped
    assert np.isnan(confidence[1:]).all() and np.isnan(difference[1:]).all()
    assert model.mask[0].tolist() == [1, 1, 1, 1]


def test_alert_finishes_after_monitoring_days_without_detection_and_revives() -> None:
    model = fitted(1)
    feed(model, SCHEDULE, ["S" * 15 + "C" * 15])
    cloudy = np.full((1, 1), np.nan)
    model.monitor(cloudy, D(29) + dt.timedelta(days=61))
    assert stage(model) == [3]  # exactly monitoring_days (61) since the last detection
    model.monitor(cloudy, D(29) + dt.timedelta(days=62))
    assert stage(model) == [4]
    assert layer(model, "confirmation_date") == dates(D(17))  # still reported
    feed(model, [D(29) + dt.timedelta(days=70)], ["C"])  # completes C C C with D(28), D(29)
    assert stage(model) == [3]
    assert layer(model, "last_detection_date") == dates(D(29) + dt.timedelta(days=70))
    assert layer(model, "detection_count") == [16]


def test_min_confidence_default_is_five() -> None:
    pixels = [[0.0] * 15 + [4.9] * 15, [0.0] * 15 + [5.1] * 15]
    model = fitted(2)
    feed(model, SCHEDULE, pixels)
    assert layer(model, "first_detection_date") == dates(0, D(15))
    assert layer(model, "last_stable_date") == dates(D(29), D(14))
    assert layer(model, "confidence")[1] == pytest.approx(5.1, rel=1e-5)
    model = fitted(2, min_confidence=4.0)
    feed(model, SCHEDULE, pixels)
    assert layer(model, "first_detection_date") == dates(D(15), D(15))


def test_nan_gaps_are_skipped_inside_windows() -> None:
    model = fitted(2)
    pixels = ["S" * 15 + "C..C.C" + "C" * 9, "S" * 15 + "C.SCC" + "C" * 10]
    for i, when in enumerate(SCHEDULE):
        feed(model, [when], [p[i] for p in pixels])
        if i == 17:
            assert stage(model) == [1, 0]  # pixel 0: C then two gaps, the window is still S S C
        if i == 18:
            assert stage(model) == [2, 2]
        if i == 19:
            assert stage(model) == [2, 2]
        if i == 20:
            assert stage(model) == [3, 3]
    assert layer(model, "first_detection_date") == dates(D(15), D(18))
    assert layer(model, "confirmation_date") == dates(D(20), D(20))
    assert layer(model, "last_detection_date") == dates(D(29), D(29))
    # Change observations from first to last detection: 15, 18, 20..29 / 18..29.
    assert layer(model, "detection_count") == [12, 12]
    assert layer(model, "monitoring_observation_count") == [17, 19]


def test_window_of_four_with_three_changes() -> None:
    model = fitted(2, window=4, min_changes=3)
    pixels = ["S" * 15 + "CSCC" + "C" * 11, "S" * 15 + "CSCS" + "S" * 11]
    for i, when in enumerate(SCHEDULE):
        feed(model, [when], [p[i] for p in pixels])
        if i == 15:
            assert stage(model) == [1, 1]
        if i == 16:
            assert stage(model) == [0, 0]  # the newest observation is not a change
        if i == 17:
            assert stage(model) == [2, 2]
        if i == 18:
            assert stage(model) == [3, 0]
    assert layer(model, "first_detection_date") == dates(D(15), 0)  # oldest change of the window
    assert layer(model, "confirmation_date") == dates(D(18), 0)  # newest change of the window
    assert layer(model, "last_detection_date") == dates(D(29), 0)
    # Window 13..16 (S S C S) is stable: its newest non-change observation is D(16).
    assert layer(model, "last_stable_date") == dates(D(16), D(29))
    assert layer(model, "detection_count") == [14, 0]  # 15, 17..29


def test_direction_filter() -> None:
    pixels = ["S" * 15 + "I" * 15, "S" * 15 + "C" * 15]
    results = {}
    for direction in ("both", "decrease", "increase"):
        model = fitted(2, direction=direction)
        feed(model, SCHEDULE, pixels)
        results[direction] = (layer(model, "confirmation_date"), layer(model, "last_stable_date"))
        if direction == "both":
            difference = layer(model, "difference")
            assert difference[0] == pytest.approx(INCREASE * float(model.rmse[0, 0]), rel=1e-5)
            assert difference[1] > 0
    assert results["both"] == (dates(D(17), D(17)), dates(D(14), D(14)))
    # A filtered-out direction is not a change: those observations are stable.
    assert results["decrease"] == (dates(0, D(17)), dates(D(29), D(14)))
    assert results["increase"] == (dates(D(17), 0), dates(D(14), D(29)))


# --- calibration and monitoring periods -------------------------------------------------------------------------


def test_change_confirmed_in_calibration_is_dropped_and_redetected_after_stability() -> None:
    pixels = ["SSS" + "C" * 27, "SSS" + "CCCC" + "S" * 13 + "C" * 10]
    model = fitted(2)
    feed(model, SCHEDULE, pixels)
    assert layer(model, "confirmation_date") == dates(0, D(22))
    assert layer(model, "first_detection_date") == dates(0, D(20))
    assert layer(model, "last_detection_date") == dates(0, D(29))
    assert layer(model, "detection_count") == [0, 10]
    assert stage(model) == [0, 3]
    assert np.isnan(layer(model, "confidence")[0])

    model = fitted(2, must_be_confirmed_in_monitoring=False)
    feed(model, SCHEDULE[:7], [p[:7] for p in pixels])
    assert layer(model, "confirmation_date") == dates(D(5), D(5))  # reported although in calibration
    feed(model, SCHEDULE[7:], [p[7:] for p in pixels])
    assert layer(model, "first_detection_date") == dates(D(3), D(20))
    assert layer(model, "confirmation_date") == dates(D(5), D(22))
    assert layer(model, "last_detection_date") == dates(D(29), D(29))
    assert layer(model, "detection_count") == [27, 10]
    # Pixel 1's calibration alert was withdrawn by the stable window ending D(9) (60 days after D(3)).
    assert layer(model, "last_stable_date") == dates(D(2), D(19))


def test_calibration_period_is_91_days() -> None:
    offsets = [0, 10, 20, 30, 40, 50, 60, 70, 80, 88, 89, 90, 91]
    model = fitted(2)
    feed(model, [at(o) for o in offsets], ["S" * 9 + "CCC.", "S" * 9 + ".CCC"])
    assert layer(model, "confirmation_date") == dates(0, at(91))  # day 90 is calibration, day 91 monitoring
    assert layer(model, "first_detection_date") == dates(0, at(89))
    assert layer(model, "calibration_observation_count") == [12, 11]
    assert layer(model, "monitoring_observation_count") == [0, 1]


# --- stability before change ------------------------------------------------------------------------------------


def test_must_be_stable_before_change() -> None:
    pixels = ["." * 10 + "C" * 20, "C" * 30, "." * 10 + "CCC" + "SSS" + "C" * 14]
    model = fitted(3)
    feed(model, SCHEDULE[:13], [p[:13] for p in pixels])
    assert layer(model, "confirmation_date") == [0, 0, 0]
    feed(model, SCHEDULE[13:], [p[13:] for p in pixels])
    # Pixels 0 and 1 start changed and never see a stable window.
    assert layer(model, "confirmation_date") == dates(0, 0, D(18))
    assert layer(model, "first_detection_date") == dates(0, 0, D(16))
    assert stage(model) == [0, 0, 3]

    model = fitted(3, must_be_stable_before_change=False)
    feed(model, SCHEDULE[:13], [p[:13] for p in pixels])
    assert layer(model, "confirmation_date") == dates(D(12), 0, D(12))
    feed(model, SCHEDULE[13:], [p[13:] for p in pixels])
    # Pixel 1 was confirmed at D(2), in calibration: dropped, and it never turns stable to re-arm.
    # Pixel 2's first alert is withdrawn by the stable window at D(15), then it alerts again.
    assert layer(model, "first_detection_date") == dates(D(10), 0, D(16))
    assert layer(model, "confirmation_date") == dates(D(12), 0, D(18))
    assert layer(model, "last_detection_date") == dates(D(29), 0, D(29))
    assert layer(model, "detection_count") == [20, 0, 14]
    assert stage(model) == [3, 0, 3]


# --- must stay changed: withdrawal and finished alerts ----------------------------------------------------------


def test_regrowth_withdraws_short_alerts_and_finishes_long_ones() -> None:
    pixels = ["S" * 15 + "CCC" + "S" * 12, "S" * 15 + "C" * 10 + "S" * 5, "S" * 15 + "CCC" + "S" * 5 + "C" * 7]
    model = fitted(3)
    feed(model, SCHEDULE[:18], [p[:18] for p in pixels])
    assert stage(model) == [3, 3, 3]
    feed(model, SCHEDULE[18:], [p[18:] for p in pixels])
    # Pixel 0: stable again at D(20), 50 days after D(15): withdrawn, nothing reported, still monitored.
    # Pixel 1: stable again at D(27), 120 days after D(15): finished, reported, frozen (mask 3).
    # Pixel 2: withdrawn at D(20), then a new alert with its own dates.
    assert stage(model) == [0, 4, 3]
    assert model.mask[0].tolist() == [1, 3, 1]
    assert layer(model, "first_detection_date") == dates(0, D(15), D(23))
    assert layer(model, "confirmation_date") == dates(0, D(17), D(25))
    assert layer(model, "last_detection_date") == dates(0, D(24), D(29))
    assert layer(model, "last_stable_date") == dates(D(29), D(27), D(22))
    assert layer(model, "detection_count") == [0, 10, 7]
    assert np.isnan(layer(model, "confidence")[0])
    assert layer(model, "monitoring_observation_count") == [20, 18, 20]  # frozen after D(27)

    model = fitted(3, must_stay_changed=False)
    feed(model, SCHEDULE, pixels)
    assert stage(model) == [4, 4, 4]
    assert model.mask[0].tolist() == [3, 3, 3]
    assert layer(model, "first_detection_date") == dates(D(15), D(15), D(15))
    assert layer(model, "last_detection_date") == dates(D(17), D(24), D(17))
    assert layer(model, "last_stable_date") == dates(D(20), D(27), D(20))
    assert layer(model, "detection_count") == [3, 10, 3]


def test_haze_blip_withdrawn_and_withdrawal_limit_is_61_days() -> None:
    offsets = [100, 110, 120, 130, 131, 132, 140, 150, 189, 191, 192]
    pixels = ["SSSCCCSSS..", "SSSCCC.SSS.", "SSSCCC.SS.S"]
    model = fitted(3)
    feed(model, [at(o) for o in offsets[:6]], [p[:6] for p in pixels])
    assert stage(model) == [3, 3, 3]  # three hazy days in a row confirm
    assert layer(model, "confirmation_date") == dates(at(132), at(132), at(132))
    feed(model, [at(o) for o in offsets[6:]], [p[6:] for p in pixels])
    # Stable again 59, 61, 62 days after the first detection (day 130).
    assert layer(model, "last_stable_date") == dates(at(189), at(191), at(192))
    assert stage(model) == [0, 0, 4]
    assert layer(model, "confirmation_date") == dates(0, 0, at(132))
    assert model.mask[0].tolist() == [1, 1, 3]


# --- persistence, contract, errors, speed -----------------------------------------------------------------------

MIXED = [
    "S" * 15 + "C" * 15,
    "SSS" + "CCCC" + "S" * 13 + "C" * 10,
    "S" * 15 + "CCC" + "S" * 5 + "C" * 7,
    "S" * 15 + "C..C.C" + "C" * 9,
    "S" * 15 + "C" * 10 + "S" * 5,
    "S" * 15 + "I" * 15,
]


def assert_same_state(a: CCDCNRT, b: CCDCNRT) -> None:
    """Every attribute equal, arrays with the same dtype."""
    assert vars(a).keys() == vars(b).keys()
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, name
            assert np.array_equal(value, other, equal_nan=True), name
        else:
            assert value == other, name


def to_netcdf_and_back(model: CCDCNRT, path: Path) -> dict:
    """The round trip scheduler/state.py makes: arrays as variables, scalars through JSON."""
    variables, scalars = {}, {}
    for name, value in vars(model).items():
        if name in ("x", "y"):
            continue
        if isinstance(value, np.ndarray):
            dims = ("y", "x") if value.ndim == 2 else (f"{name}_k", "y", "x")
            variables[name] = (dims, value)
        else:
            scalars[name] = value
    ds = xr.Dataset(variables, coords={"x": model.x, "y": model.y})
    ds.attrs["meta"] = json.dumps(scalars)
    ds.to_netcdf(path, engine="netcdf4")
    with xr.open_dataset(path, engine="netcdf4") as opened:
        loaded = opened.load()
    saved = dict(json.loads(loaded.attrs["meta"]))
    saved.update({name: var.values for name, var in loaded.data_vars.items()})
    saved["x"], saved["y"] = loaded["x"].values, loaded["y"].values
    return saved


def test_save_restore_mid_stream_continues_exactly(tmp_path: Path) -> None:
    reference = fitted(len(MIXED))
    feed(reference, SCHEDULE, MIXED)

    model = fitted(len(MIXED))
    feed(model, SCHEDULE[:16], [p[:16] for p in MIXED])  # mid-alert, mid-window
    copied = CCDCNRT.__new__(CCDCNRT)
    vars(copied).update({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in vars(model).items()})
    feed(copied, SCHEDULE[16:], [p[16:] for p in MIXED])
    assert_same_state(copied, reference)

    model = fitted(len(MIXED))
    cuts = (0, 7, 16, 22, len(SCHEDULE))
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):  # scheduled runs, each a load-update-save cycle
        restored = CCDCNRT.__new__(CCDCNRT)
        vars(restored).update(to_netcdf_and_back(model, tmp_path / f"state{start}.nc"))
        model = restored
        feed(model, SCHEDULE[start:stop], [p[start:stop] for p in MIXED])
    assert_same_state(model, reference)
    for name, value in reference.layers().items():
        assert np.array_equal(model.layers()[name], value, equal_nan=True), name
    assert np.array_equal(model.alert_stage(), reference.alert_stage())


def test_state_holds_only_arrays_and_plain_scalars() -> None:
    model = fitted(3)
    feed(model, SCHEDULE[:12], ["S" * 12] * 3)
    for name, value in vars(model).items():
        if name in ("x", "y"):
            assert isinstance(value, np.ndarray) and value.ndim == 1
        elif isinstance(value, np.ndarray):
            assert value.ndim in (2, 3), name
            assert value.shape[-2:] == (1, 3), name
        else:
            assert value is None or type(value) in (bool, int, float, str), name
    assert model.mask.dtype == np.uint8 and model.mask.ndim == 2
    assert model.monitoring_start == "2023-01-01" and isinstance(model.last_date, str)
    out = model.layers()
    for name in ("first_detection_date", "confirmation_date", "last_detection_date", "last_stable_date"):
        assert out[name].dtype == np.uint16
    for name in ("detection_count", "monitoring_observation_count", "calibration_observation_count"):
        assert out[name].dtype == np.uint16
    assert out["confidence"].dtype == np.float32 and out["difference"].dtype == np.float32
    assert model.alert_stage().dtype == np.uint8


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        CCDCNRT().monitor(np.zeros((1, 1)), D(0))
    with pytest.raises(ValueError):
        CCDCNRT(direction="down")
    with pytest.raises(ValueError):
        CCDCNRT(window=3, min_changes=4)
    model = fitted(1)
    with pytest.raises(ValueError, match="before monitoring_start"):
        model.monitor(np.zeros((1, 1)), dt.datetime(2022, 12, 31))
    model.monitor(np.zeros((1, 1)), D(2))
    with pytest.raises(ValueError, match="earlier"):
        model.monitor(np.zeros((1, 1)), D(1))
    model.monitor(np.zeros((1, 1)), dt.datetime(2023, 1, 21, tzinfo=dt.UTC))  # aware: converted, same instant ok
