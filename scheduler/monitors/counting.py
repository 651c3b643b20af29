"""Counting monitors (nrt's IQR and CCDC): an outlier test per observation, `boundary` consecutive ones confirm."""

from __future__ import annotations

import numpy as np

from scheduler import nrt_boundary
from scheduler.config import CCDCConfig, IQRConfig
from scheduler.monitors.base import Derived
from scheduler.monitors.nrtbase import NrtMonitor
from scheduler.pixel_codes import STAGE_FIRST, STAGE_PROVISIONAL


class CountingMonitor(NrtMonitor):
    """nrt's process is the count of consecutive outliers: 1 first, boundary - 1 provisional, boundary confirmed."""

    counts_outliers = True

    def _pending(self, stage: np.ndarray, monitored: np.ndarray) -> None:
        """Stages from nrt's count of consecutive outliers."""
        process = np.asarray(self.model.process)
        stage[monitored & (process >= 1)] = STAGE_FIRST
        stage[monitored & (process >= max(2, self.model.boundary - 1))] = STAGE_PROVISIONAL


class IQRMonitor(CountingMonitor):
    """nrt's IQR: outliers beyond the fences q25 - s IQR .. q75 + s IQR of the history residuals."""

    models = {IQRConfig: nrt_boundary.IQR}
    parameters = {IQRConfig: ("sensitivity", "boundary")}
    fitters = {IQRConfig: nrt_boundary.fit_iqr}

    def spread(self) -> np.ndarray:
        """IQR / 1.349 estimates sigma for normal residuals."""
        return (self.model.q75 - self.model.q25) / 1.349

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """The fences, computed once per state (Derived) and shared by the anomaly test and the plot's band."""
        model = self.model
        iqr = model.q75 - model.q25
        return model.q25 - model.sensitivity * iqr, model.q75 + model.sensitivity * iqr

    def _outside(self, residuals: np.ndarray, derived: Derived) -> np.ndarray:
        """Below the lower or above the upper fence."""
        with np.errstate(invalid="ignore"):
            return (residuals < derived.lower) | (residuals > derived.upper)

    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The fences themselves."""
        derived = self.derived()
        s, boundary = self.model.sensitivity, self.model.boundary
        text = f"IQR fences of the history residuals: q25 - {s:g} IQR .. q75 + {s:g} IQR; {boundary} consecutive "
        return derived.lower, derived.upper, text + "outliers confirm"


class CCDCMonitor(CountingMonitor):
    """nrt's CCDC: outliers beyond `sensitivity` x RMSE of the stable fit."""

    models = {CCDCConfig: nrt_boundary.CCDC}
    parameters = {CCDCConfig: ("sensitivity", "boundary")}

    def spread(self) -> np.ndarray:
        """The fit's RMSE."""
        return self.model.rmse

    def limits(self) -> tuple[None, None]:
        """CCDC's test divides by the RMSE itself (no limit array)."""
        return None, None

    def _outside(self, residuals: np.ndarray, derived: Derived) -> np.ndarray:
        """Nrt's CCDC test: |residual| / RMSE > sensitivity."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(residuals) / self.model.rmse > self.model.sensitivity

    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """+/- sensitivity x RMSE."""
        model = self.model
        half = model.sensitivity * np.asarray(model.rmse)
        return -half, half, f"+/- {model.sensitivity:g} x RMSE; {model.boundary} consecutive outliers confirm"
