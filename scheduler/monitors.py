"""nrt monitors behind one interface: build from config, fit, absorb one acquisition, report alert layers."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from nrt.monitor import BaseNrt
from nrt.monitor.iqr import IQR

from catalog.encoding import DATE_NODATA, Status, days_since_epoch
from scheduler.config import MonitorConfig

log = logging.getLogger(__name__)

MONITOR_CLASSES: dict[str, type[BaseNrt]] = {"IQR": IQR}

# nrt's state mask codes.
NRT_NOT_MONITORED, NRT_MONITORED, NRT_UNSTABLE, NRT_BREAK, NRT_SHORT = 0, 1, 2, 3, 4

# Our own per-pixel bookkeeping kept beside nrt's state: the current run of anomalous observations.
EXTRA_LAYERS = {
    "first_date": np.uint16,  # days since 1970-01-01 of the run's first anomalous observation
    "run_count": np.uint16,  # anomalous observations in the current run
    "run_sum": np.float32,  # sum of residuals (observed - expected) over the run
    "run_score": np.float32,  # sum of |residual| / sigma over the run
}


@dataclass
class MonitorState:
    """An nrt monitor plus our run bookkeeping; everything a tile needs to continue monitoring."""

    monitor: BaseNrt
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    empty: bool = False  # nothing in the tile could be fitted (no forest, or no clear history)


def build_monitor(cfg: MonitorConfig, forest: np.ndarray) -> BaseNrt:
    """Instantiate the configured nrt monitor on a uint8 mask (1 = monitor)."""
    return IQR(
        mask=forest.astype(np.uint8),
        trend=cfg.trend,
        harmonic_order=cfg.harmonic_order,
        sensitivity=cfg.sensitivity,
        boundary=cfg.boundary,
    )


def fit_monitor(cfg: MonitorConfig, history: xr.DataArray, forest: np.ndarray) -> MonitorState:
    """Fit on the stable history; a tile with nothing fittable becomes an 'empty' state, not an error."""
    monitor = build_monitor(cfg, forest)
    shape = forest.shape
    extras = {name: np.zeros(shape, dtype=dtype) for name, dtype in EXTRA_LAYERS.items()}
    if not forest.any():
        monitor.set_xy(history)
        return MonitorState(monitor, extras, empty=True)
    try:
        with warnings.catch_warnings():
            # nrt warns for every short series it masks; we report the count ourselves.
            warnings.simplefilter("ignore")
            monitor.fit(history, method=cfg.fit_method)
    except ValueError as exc:
        if "sufficient" not in str(exc):
            raise
        monitor.mask[monitor.mask == NRT_MONITORED] = NRT_SHORT
        monitor.set_xy(history)
        return MonitorState(monitor, extras, empty=True)
    monitor.process = np.zeros(shape, dtype=np.uint8)
    monitor.detection_date = np.zeros(shape, dtype=np.uint16)
    return MonitorState(monitor, extras)


def residual_sigma(monitor: BaseNrt) -> np.ndarray:
    """Each pixel's residual spread: IQR / 1.349 estimates sigma for normal residuals."""
    iqr = np.asarray(monitor.q75 - monitor.q25, dtype=np.float32)
    return np.maximum(iqr / np.float32(1.349), np.float32(1e-6))


def is_anomalous(monitor: BaseNrt, residuals: np.ndarray) -> np.ndarray:
    """The monitor's own outlier test for one observation (IQR fences)."""
    iqr = monitor.q75 - monitor.q25
    lower = monitor.q25 - monitor.sensitivity * iqr
    upper = monitor.q75 + monitor.sensitivity * iqr
    return (residuals < lower) | (residuals > upper)


def absorb(state: MonitorState, array: np.ndarray, when: dt.datetime) -> None:
    """Feed one acquisition (2-D index values, NaN = no observation) to the monitor and our bookkeeping."""
    if state.empty:
        return
    monitor = state.monitor
    array = np.where(np.isfinite(array), array, np.nan).astype(np.float64)
    # nrt needs a naive datetime.datetime: it subtracts datetime(1970, 1, 1).
    naive = when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
    residuals = array - monitor.predict(naive)
    valid = (monitor.mask == NRT_MONITORED) & np.isfinite(array)
    monitor.monitor(array=array, date=naive)
    anomalous = valid & is_anomalous(monitor, residuals)
    extras = state.extras
    starting = anomalous & (extras["run_count"] == 0)
    extras["first_date"][starting] = days_since_epoch(naive)
    extras["run_count"][anomalous] += 1
    extras["run_sum"][anomalous] += residuals[anomalous].astype(np.float32)
    score = np.abs(residuals) / residual_sigma(monitor)
    extras["run_score"][anomalous] += score[anomalous].astype(np.float32)
    # A clear, normal observation ends the run; clouds (invalid) do not.
    ended = valid & ~anomalous & (monitor.mask == NRT_MONITORED)
    for name in EXTRA_LAYERS:
        extras[name][ended] = 0


def report_layers(state: MonitorState, cfg: MonitorConfig) -> dict[str, np.ndarray]:
    """The published layers: status codes, first-detection date, mean magnitude and confidence."""
    monitor = state.monitor
    mask = monitor.mask
    extras = state.extras
    shape = mask.shape
    status = np.full(shape, Status.NONE, dtype=np.uint8)
    count = extras["run_count"].astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        magnitude = np.where(count > 0, extras["run_sum"] / count, np.nan).astype(np.float32)
        confidence = np.where(count > 0, extras["run_score"] / count, np.nan).astype(np.float32)
    high = np.nan_to_num(confidence, nan=0.0) >= cfg.high_confidence
    monitored = mask == NRT_MONITORED
    if not state.empty:
        process = np.asarray(monitor.process)
        provisional_at = max(2, cfg.boundary - 1)
        first = monitored & (process >= 1) & (process < provisional_at)
        provisional = monitored & (process >= provisional_at)
        status[first] = np.where(high[first], Status.FIRST_HIGH, Status.FIRST_LOW)
        status[provisional] = np.where(high[provisional], Status.PROVISIONAL_HIGH, Status.PROVISIONAL_LOW)
    confirmed = mask == NRT_BREAK
    status[confirmed] = np.where(high[confirmed], Status.CONFIRMED_HIGH, Status.CONFIRMED_LOW)
    status[mask == NRT_NOT_MONITORED] = Status.NOT_MONITORED
    status[mask == NRT_UNSTABLE] = Status.UNSTABLE_HISTORY
    status[mask == NRT_SHORT] = Status.INSUFFICIENT_HISTORY
    alert = (status >= 1) & (status <= 8)
    date = np.where(alert, extras["first_date"], DATE_NODATA).astype(np.uint16)
    return {
        "status": status,
        "date": date,
        "magnitude": np.where(alert, magnitude, np.nan).astype(np.float32),
        "confidence": np.where(alert, confidence, np.nan).astype(np.float32),
    }
