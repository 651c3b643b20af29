"""Which Monitor family monitors with a config class, and which one a state's model belongs to."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import xarray as xr

from catalog.series import SERIES_KEY, ModelExport, SeriesExport
from scheduler.config import MonitorConfig
from scheduler.monitors.base import Monitor, MonitorState
from scheduler.monitors.counting import CCDCMonitor, IQRMonitor
from scheduler.monitors.sepal import CCDCNRTMonitor
from scheduler.monitors.sigma import EWMAMonitor, SigmaMonitor

# Every family; a new algorithm or source adds its class here (and its config class to scheduler/config.py).
FAMILIES: tuple[type[Monitor], ...] = (IQRMonitor, CCDCMonitor, EWMAMonitor, SigmaMonitor, CCDCNRTMonitor)

BY_CONFIG: dict[type, type[Monitor]] = {config: family for family in FAMILIES for config in family.models}
BY_MODEL: dict[type, type[Monitor]] = {model: family for family in FAMILIES for model in family.models.values()}
# The model classes by name, as the state file records them.
MONITOR_CLASSES: dict[str, type] = {model.__name__: model for model in BY_MODEL}


def monitor_for(cfg: MonitorConfig) -> type[Monitor]:
    """The family that monitors with `cfg`."""
    try:
        return BY_CONFIG[type(cfg)]
    except KeyError:
        raise TypeError(f"no monitor for {type(cfg).__name__}") from None


def monitor_of(state: MonitorState, cfg: MonitorConfig | None = None) -> Monitor:
    """The state's model in its family's interface."""
    try:
        family = BY_MODEL[type(state.monitor)]
    except KeyError:
        raise TypeError(f"no monitor family for {type(state.monitor).__name__}") from None
    return family(state, cfg)


def fit_monitor(
    cfg: MonitorConfig,
    history: xr.DataArray,
    forest: np.ndarray,
    monitoring_start: dt.date,
    bands: dict[str, xr.DataArray] | None = None,
    *,
    threads: int = 1,
) -> MonitorState:
    """Fit on the stable history; a tile with nothing fittable becomes an 'empty' state, not an error.

    `threads`: numba threads for nrt's parallel fits (OLS, RIRLS, CCDC-stable, the screenings; ROC is serial).
    """
    monitor = monitor_for(cfg).create(cfg, forest, monitoring_start)
    monitor.fit(history, bands or {}, threads)
    return monitor.state


def absorb(state: MonitorState, array: np.ndarray, when: dt.datetime) -> None:
    """Feed one acquisition (2-D index values, NaN = no observation) to the monitor and our bookkeeping."""
    monitor_of(state).absorb(array, when)


def report_layers(state: MonitorState, cfg: MonitorConfig) -> dict[str, Any]:
    """The published layers: status codes, first-detection date, mean magnitude and confidence (+ series data)."""
    monitor = monitor_of(state, cfg)
    layers: dict[str, Any] = monitor.layers(cfg)
    record = state.series
    layers[SERIES_KEY] = SeriesExport(record.get("chunks", []), monitor.export_model(), record.get("monitoring_start"))
    return layers


def export_model(state: MonitorState) -> ModelExport | None:
    """The fitted model per pixel and its threshold band, for the series plot; None when nothing was fitted."""
    return monitor_of(state).export_model()


def is_anomalous(model: Any, residuals: np.ndarray) -> np.ndarray:
    """Whether one observation is anomalous by the model's family's test (a model outside any state)."""
    return monitor_of(MonitorState(model)).outside(residuals)


def residual_sigma(model: Any) -> np.ndarray:
    """Each pixel's residual spread by the model's family, the unit of our confidence."""
    return monitor_of(MonitorState(model)).sigma()
