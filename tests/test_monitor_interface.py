"""The Monitor interface: one family per config class, and states with nothing fitted report instead of failing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from rasterio.crs import CRS
from test_monitors import DROP_DATE, EVERY_ALGORITHM, HISTORY_END, SIZE, _cube, _drop_mask, _forest

from catalog.encoding import CONFIRMED_CODES, DATE_NODATA, Status
from catalog.series import SERIES_KEY
from scheduler.config import parse_monitor
from scheduler.monitors import (
    MONITOR_CLASSES,
    absorb,
    export_model,
    fit_monitor,
    monitor_for,
    monitor_of,
    report_layers,
)
from scheduler.state import TileState, load_state, save_state

START = HISTORY_END + dt.timedelta(days=1)
PENDING_CODES = [Status.FIRST_LOW, Status.FIRST_HIGH, Status.PROVISIONAL_LOW, Status.PROVISIONAL_HIGH]


def test_every_config_class_has_one_family() -> None:
    families = {m["algorithm"]: monitor_for(parse_monitor(m)).__name__ for m in EVERY_ALGORITHM}
    assert families == {
        "iqr": "IQRMonitor",
        "ccdc": "CCDCMonitor",
        "ewma": "EWMAMonitor",
        "cusum": "SigmaMonitor",
        "mosum": "SigmaMonitor",
        "ccdc-nrt": "CCDCNRTMonitor",
    }
    assert set(MONITOR_CLASSES) == {"IQR", "CCDC", "EWMA", "CuSum", "MoSum", "CCDCNRT"}


@pytest.mark.parametrize("monitor", EVERY_ALGORITHM, ids=lambda m: m["algorithm"])
def test_limits_are_the_anomaly_test_and_the_plots_band(monitor: dict) -> None:
    """An observation outside the published band is exactly what the family's anomaly test flags (IQR, CCDC-NRT)."""
    cfg = parse_monitor(monitor)
    state = fit_monitor(cfg, _cube("2021-01-01", "2022-12-31", seed=1), _forest(), START)
    family = monitor_of(state, cfg)
    lower, upper, _ = family.band_offsets()
    # Residuals about as wide as the band, whatever the family's threshold: some inside, some outside.
    scale = float(np.nanmedian(np.abs(upper[:-1]))) if np.ndim(upper) else abs(float(upper))
    residuals = np.random.default_rng(5).normal(0, scale, (SIZE, SIZE))
    flagged = family.outside(residuals)
    assert 5 < flagged[:-1].sum() < 140  # some, not all, of the 132 forest pixels
    if cfg.algorithm in ("iqr", "ccdc", "ccdc-nrt"):
        banded = (residuals < lower) | (residuals > upper)
        np.testing.assert_array_equal(banded[:-1], flagged[:-1])
    stage = family.stage()
    assert stage.dtype == np.uint8 and stage.shape == (SIZE, SIZE) and not stage.any()  # nothing absorbed yet


def _round_trip(state, tmp_path):
    tile = TileState("t", CRS.from_epsg(32633), Affine(20, 0, 500000, 0, -20, 5400000), state, {}, 0, None)
    save_state(tile, tmp_path / "s.nc")
    return load_state(tmp_path / "s.nc").monitor


@pytest.mark.parametrize("monitor", [*EVERY_ALGORITHM, {"algorithm": "iqr", "harmonic_order": 2}], ids=str)
def test_history_too_short_for_every_pixel_reports_insufficient_history(monitor: dict, tmp_path) -> None:
    """Seven dates (a quarter of them cloudy) fit no pixel: the tile reports 'insufficient history', no traceback."""
    cfg = parse_monitor(monitor)
    history = _cube("2022-12-01", "2022-12-31", seed=1)
    assert history.sizes["time"] == 7
    state = fit_monitor(cfg, history, _forest(), START)
    monitoring = _cube("2023-01-01", "2023-02-01", seed=2)
    for i, time in enumerate(monitoring.time.values):
        absorb(state, monitoring.isel(time=i).values, pd.Timestamp(time).to_pydatetime())
    state = _round_trip(state, tmp_path)
    layers = report_layers(state, cfg)
    status = layers["status"]
    assert np.all(status[:-1] == Status.INSUFFICIENT_HISTORY)
    assert np.all(status[-1] == Status.NOT_MONITORED)  # the row outside the forest mask
    assert np.all(layers["date"] == DATE_NODATA) and np.all(layers["confirmed"] == DATE_NODATA)
    assert np.all(np.isnan(layers["magnitude"])) and np.all(np.isnan(layers["confidence"]))
    assert layers[SERIES_KEY].model is None or np.all(np.isnan(layers[SERIES_KEY].model.coefficients))
    assert export_model(state) is None or np.all(np.isnan(export_model(state).lower))


@pytest.mark.parametrize("monitor", EVERY_ALGORITHM, ids=lambda m: m["algorithm"])
def test_tile_without_forest_reports_not_monitored(monitor: dict, tmp_path) -> None:
    cfg = parse_monitor(monitor)
    state = fit_monitor(cfg, _cube("2021-01-01", "2022-12-31", seed=1), np.zeros((SIZE, SIZE), np.uint8), START)
    assert state.empty
    absorb(state, np.full((SIZE, SIZE), 0.5), dt.datetime(2023, 1, 5))
    layers = report_layers(_round_trip(state, tmp_path), cfg)
    assert np.all(layers["status"] == Status.NOT_MONITORED)
    assert layers[SERIES_KEY].model is None


def test_ccdcnrt_first_and_provisional_alerts_have_dates() -> None:
    """Status 1-8 pixels all have a date: CCDC-NRT's pending ones take their window's first change."""
    cfg = parse_monitor({"algorithm": "ccdc-nrt", "calibration_days": 0})
    state = fit_monitor(cfg, _cube("2021-01-01", "2022-12-31", seed=1), _forest(), START)
    monitoring = _cube("2023-01-01", "2023-06-15", seed=2)  # the drop (2023-06-01) and a few dates after it
    seen = set()
    drop_day = (DROP_DATE.date() - dt.date(1970, 1, 1)).days
    for i, time in enumerate(monitoring.time.values):
        absorb(state, monitoring.isel(time=i).values, pd.Timestamp(time).to_pydatetime())
        layers = report_layers(state, cfg)
        status = layers["status"]
        alert = (status >= 1) & (status <= 8)
        assert np.all(layers["date"][alert] != DATE_NODATA)
        assert np.all(np.isfinite(layers["confidence"][alert])) and np.all(np.isfinite(layers["magnitude"][alert]))
        pending = np.isin(status, PENDING_CODES)
        late = pending & _drop_mask()
        if late.any():
            assert np.all(layers["date"][late] >= drop_day) and np.all(layers["magnitude"][late] < -0.3)
        seen |= set(np.unique(status[_drop_mask()]).tolist())
    assert {Status.FIRST_HIGH, Status.PROVISIONAL_HIGH} <= seen  # both pending stages happened on the drop


def test_ccdcnrt_change_in_calibration_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A disturbance confirmed in the calibration period is not an alert, but the log says how many pixels."""
    cfg = parse_monitor({"algorithm": "ccdc-nrt", "calibration_days": 365})
    state = fit_monitor(cfg, _cube("2021-01-01", "2022-12-31", seed=1), _forest(), START)
    monitoring = _cube("2023-01-01", "2023-12-31", seed=2)
    with caplog.at_level("INFO", logger="scheduler.ccdcnrt"):
        for i, time in enumerate(monitoring.time.values):
            absorb(state, monitoring.isel(time=i).values, pd.Timestamp(time).to_pydatetime())
    status = report_layers(state, cfg)["status"]
    assert not np.isin(status, CONFIRMED_CODES).any()
    counts = [int(r.getMessage().split()[1]) for r in caplog.records if "calibration period" in r.getMessage()]
    assert len(counts) >= 2 and sum(counts) == 36  # each of the 36 dropped pixels once, as their windows filled
