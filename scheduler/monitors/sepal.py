"""CCDC-NRT (SEPAL's change alerts, scheduler/ccdcnrt.py): the model keeps its own windows, dates and stages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import xarray as xr

from catalog.series import ModelForm
from scheduler.ccdcnrt import CCDCNRT, RMSE_FLOOR
from scheduler.config import CCDCNRTConfig, MonitorConfig
from scheduler.monitors.base import Monitor, alert_layers, naive_utc, status_codes
from scheduler.pixel_codes import STAGE_CONFIRMED, STAGE_FINISHED, STAGE_FIRST, STAGE_PROVISIONAL
from scheduler.spatial import blur_halos

# CCDCNRT's parameters, read from the config fields of the same name.
PARAMETERS = (
    "harmonic_order",
    "trend",
    "min_confidence",
    "window",
    "min_changes",
    "calibration_days",
    "monitoring_days",
    "must_be_confirmed_in_monitoring",
    "must_be_stable_before_change",
    "must_stay_changed",
    "direction",
    "armed_by_history",
    "history_outliers",
    "regional_block",
    "outlier_neighbours",
)


class CCDCNRTMonitor(Monitor):
    """CCDC-NRT: the model's confidence (|difference| / RMSE) is the anomaly test; SEPAL's windows confirm."""

    models = {CCDCNRTConfig: CCDCNRT}
    splittable = False  # it keeps the latest acquisition date and checks the order of dates

    @classmethod
    def build(cls, cfg: MonitorConfig, mask: np.ndarray, monitoring_start: dt.date) -> Any:
        """A CCDCNRT with the config's parameters."""
        kwargs = {name: getattr(cfg, name) for name in PARAMETERS}
        return CCDCNRT(mask, monitoring_start=monitoring_start, **kwargs)

    def fit(self, history: xr.DataArray, bands: dict[str, xr.DataArray], threads: int) -> None:
        """The model's NaN-aware least squares (numpy, no numba threads); pixels too short get mask 4."""
        if not self.model.mask.any():
            model = self.model
            model.x, model.y = history.x.values, history.y.values
            self.state.empty = True
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            self.model.fit(history)

    def absorb(self, array: np.ndarray, when: dt.datetime) -> None:
        """The model keeps its own dates, counts and confidences."""
        if self.state.empty:
            return
        values = np.array(array, dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        self.model.monitor(values, naive_utc(when))

    def spread(self) -> np.ndarray:
        """The fit's RMSE."""
        return self.model.rmse

    def _half_band(self) -> np.ndarray:
        """min_confidence x RMSE (floored as the model floors it)."""
        return self.model.min_confidence * np.maximum(np.asarray(self.model.rmse, np.float64), RMSE_FLOOR)

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """+/- min_confidence x RMSE around the model one year earlier."""
        half = self._half_band()
        return -half, half

    def outside(self, residuals: np.ndarray) -> np.ndarray:
        """|residual| beyond min_confidence x RMSE (residuals against the model one year earlier)."""
        with np.errstate(invalid="ignore"):
            return np.abs(residuals) > self._half_band()

    def stage(self) -> np.ndarray:
        """The model's alert stage (none in an empty state)."""
        if self.state.empty:
            return np.zeros(np.asarray(self.model.mask).shape, np.uint8)
        return self.model.alert_stage()

    def layers(self, cfg: MonitorConfig) -> dict[str, np.ndarray]:
        """SEPAL's layers; SEPAL's difference is expected - observed, ours observed - expected (a loss < 0)."""
        model = self.model
        mask = np.asarray(model.mask)
        if self.state.empty:
            zeros = np.zeros(mask.shape, np.uint16)
            nan = np.full(mask.shape, np.nan, np.float32)
            stage = np.zeros(mask.shape, np.uint8)
            return alert_layers(status_codes(stage, np.zeros(mask.shape, bool), mask), zeros, zeros, nan, nan)
        layers = model.layers()
        stage = self.stage()
        # First and provisional stages have no alert yet: the change observations of their window date them.
        pending = (stage == STAGE_FIRST) | (stage == STAGE_PROVISIONAL)
        pending_date, pending_confidence, pending_difference = model.pending()
        confidence = np.where(pending, pending_confidence, layers["confidence"]).astype(np.float32)
        difference = np.where(pending, pending_difference, layers["difference"]).astype(np.float32)
        alerted = (stage == STAGE_CONFIRMED) | (stage == STAGE_FINISHED)
        # Forest beside a clearing that changed by a small part of the clearing's drop is the sensor's blur.
        stage = np.where(blur_halos(alerted, difference, getattr(cfg, "halo_ratio", 0.0)), 0, stage).astype(np.uint8)
        high = np.nan_to_num(confidence, nan=0.0) >= cfg.high_confidence
        return alert_layers(
            status_codes(stage, high, mask),
            np.where(pending, pending_date, layers["first_detection_date"]),
            layers["confirmation_date"],
            -difference,
            confidence,
        )

    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The confidence band of a change observation."""
        lower, upper = self.limits()
        model = self.model
        return (
            lower,
            upper,
            (
                f"+/- {model.min_confidence:g} x RMSE around the model one year earlier; "
                f"{model.min_changes} changes in {model.window} observations confirm"
            ),
        )

    def model_form(self) -> ModelForm:
        """CCDC-NRT's own design matrix, evaluated one year earlier."""
        model = self.model
        band = self.band_offsets()[2]
        return ModelForm("CCDCNRT", model.trend, model.harmonic_order, "ccdcnrt", lag_years=1.0, band=band)
