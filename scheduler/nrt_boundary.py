"""Every use of nrt's private API, behind one switch that falls back to nrt's public API.

nrt's public API is `fit`, `monitor`, `predict` and `set_xy` on its monitor classes. Faster paths need its private
parts: `BaseNrt._fit` (IQR's fit without full-size float64 copies), and, per absorbed acquisition, nrt's `predict`
and `_update_process` replaced on the instance by our prediction and our outlier test (each otherwise computed a
second time). Setting the environment variable NRT_ALERTS_NRT_FAST=0 uses the public API only: slower, and the same
states bit for bit (tests/test_nrt_boundary.py runs the monitor tests both ways). Restoring a monitor from a state
file sets its attributes on an instance made without `__init__`: nrt has no public constructor taking a fitted state
(`from_netcdf` reads nrt's own files), so both modes do that.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np
import xarray as xr

from scheduler.nrt_import import defer_scipy_for_nrt

# Before nrt is imported: scipy.stats then loads only if CuSum, MoSum or ROC need it (scheduler/nrt_import.py).
defer_scipy_for_nrt()

from nrt.monitor import BaseNrt  # noqa: E402
from nrt.monitor.ccdc import CCDC  # noqa: E402
from nrt.monitor.cusum import CuSum  # noqa: E402
from nrt.monitor.ewma import EWMA  # noqa: E402
from nrt.monitor.iqr import IQR  # noqa: E402
from nrt.monitor.mosum import MoSum  # noqa: E402

from scheduler.fits import iqr_quartiles, ols_iqr  # noqa: E402
from scheduler.regressors import build_regressors, date_regressors  # noqa: E402

__all__ = ["CCDC", "EWMA", "IQR", "BaseNrt", "CuSum", "MoSum"]

FAST_ENV = "NRT_ALERTS_NRT_FAST"


def fast() -> bool:
    """Whether nrt's private API may be used (NRT_ALERTS_NRT_FAST, default on; 0/false/no/off turn it off)."""
    return os.environ.get(FAST_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def fit_iqr(monitor: IQR, history: xr.DataArray, kwargs: dict[str, Any]) -> None:
    """IQR.fit: OLS through our parallel kernels, other methods through BaseNrt._fit; public mode: IQR.fit."""
    if not fast():
        monitor.fit(history, **kwargs)
        return
    monitor.set_xy(history)
    design = build_regressors(history.time.values, monitor.trend, monitor.harmonic_order)  # build_design_matrix
    if kwargs.get("method", "OLS") == "OLS" and not kwargs.get("screen_outliers"):
        monitor.beta, monitor.q25, monitor.q75 = ols_iqr(monitor, design, history)
        return
    monitor.beta, residuals = monitor._fit(design, dataarray=history, **kwargs)
    monitor.q25, monitor.q75 = iqr_quartiles(residuals, monitor.mask)


def predict(monitor: BaseNrt, naive: dt.datetime, beta: np.ndarray) -> np.ndarray:
    """monitor.predict(naive), flat; fast mode: with `beta` (coefficients, pixels) float64 cast once per state."""
    if not fast() or type(monitor)._regressors is not BaseNrt._regressors:
        return np.asarray(monitor.predict(naive)).reshape(-1)
    return np.dot(date_regressors(np.datetime64(naive, "ns"), bool(monitor.trend), int(monitor.harmonic_order)), beta)


def monitor_step(
    monitor: BaseNrt,
    array: np.ndarray,
    naive: dt.datetime,
    prediction: np.ndarray,
    outliers: np.ndarray | None,
) -> None:
    """monitor.monitor(array, naive); fast mode: nrt reuses our `prediction` and, for IQR and CCDC, our outliers."""
    if not fast():
        with np.errstate(invalid="ignore", divide="ignore"):
            monitor.monitor(array=array, date=naive)
        return
    # nrt's monitor() predicts the same date again (a third of a 1000 x 1000 update's time): hand it ours.
    monitor.predict = lambda date: prediction
    if outliers is not None:
        # Their process update repeats our outlier test (IQR recomputing its fences): give it our test's answer.
        monitor._update_process = lambda residuals, is_valid: count_outliers(monitor, outliers, is_valid)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            monitor.monitor(array=array, date=naive)
    finally:
        # Back to the class's methods; never saved with the state.
        vars(monitor).pop("predict", None)
        vars(monitor).pop("_update_process", None)


def count_outliers(monitor: IQR | CCDC, is_outlier: np.ndarray, is_valid: np.ndarray) -> None:
    """The process update of nrt's IQR and CCDC (consecutive outliers), given their outlier test's result."""
    if monitor.process is None:
        monitor.process = np.zeros_like(is_outlier, dtype=np.uint8)
    monitor.process = np.where(is_valid, monitor.process * is_outlier + is_outlier, monitor.process)


def restore(cls: type, attributes: dict[str, Any]) -> Any:
    """A monitor of class `cls` holding `attributes` (a fitted state), made without its constructor."""
    # nrt's constructors treat state arrays as optional kwargs inconsistently.
    monitor = cls.__new__(cls)
    vars(monitor).update(attributes)
    return monitor
