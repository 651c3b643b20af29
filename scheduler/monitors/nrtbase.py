"""What nrt's monitors share: building, fitting and absorbing through scheduler/nrt_boundary.py, run bookkeeping."""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from catalog.encoding import days_since_epoch
from scheduler import nrt_boundary
from scheduler.config import MonitorConfig
from scheduler.kernels import numba_threads
from scheduler.monitors.base import (
    EXTRA_LAYERS,
    Derived,
    Monitor,
    alert_layers,
    naive_utc,
    status_codes,
)
from scheduler.pixel_codes import BREAK, MONITORED, SHORT, STAGE_CONFIRMED, STAGE_FIRST, STAGE_PROVISIONAL


class NrtMonitor(Monitor):
    """A family of nrt's monitors; subclasses give the anomaly test, the spread, the stages and the band."""

    # Per config class: the nrt constructor's parameters read from the config of that name.
    parameters: ClassVar[dict[type, tuple[str, ...]]] = {}
    # Per config class: how the model is fitted when not by its own fit() (IQR: our kernels).
    fitters: ClassVar[dict[type, Any]] = {}
    # Whether nrt's process update is our anomaly test's count (IQR, CCDC): nrt_boundary then reuses our test.
    counts_outliers: ClassVar[bool] = False
    derived_from = ("beta", "q25", "q75", "rmse", "sigma", "sensitivity", "trend", "harmonic_order")

    @classmethod
    def build(cls, cfg: MonitorConfig, mask: np.ndarray, monitoring_start: dt.date) -> Any:
        """The nrt monitor for `cfg` on `mask`."""
        kwargs = {name: getattr(cfg, name) for name in cls.parameters[type(cfg)]}
        if kwargs.get("threshold_outlier", 0.0) is None:  # EWMA's screening turned off
            kwargs["threshold_outlier"] = np.inf
        return cls.models[type(cfg)](mask=mask, trend=cfg.trend, harmonic_order=cfg.harmonic_order, **kwargs)

    def _fit_kwargs(self, bands: dict[str, xr.DataArray], threads: int) -> dict[str, Any]:
        """Nrt fit arguments: method, screening (always explicit: EWMA and CCDC screen by default), threads."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {"method": cfg.fit_method, "screen_outliers": None, "n_threads": threads}
        if cfg.screen_outliers == "Shewhart":
            kwargs.update(screen_outliers="Shewhart", L=getattr(cfg, "shewhart_l", 5.0))
        elif cfg.screen_outliers == "CCDC_RIRLS":
            # Reflectances are already scaled to 0..1 by the loader.
            kwargs.update(screen_outliers="CCDC_RIRLS", green=bands["green"], swir=bands["swir16"], scaling_factor=1)
        if cfg.fit_method == "ROC":
            kwargs["alpha"] = getattr(cfg, "alpha", 0.05)
        return kwargs

    def fit(self, history: xr.DataArray, bands: dict[str, xr.DataArray], threads: int) -> None:
        """Nrt's fit (numba threads for its parallel fits; ROC is serial); all series too short: an empty state."""
        model = self.model
        shape = model.mask.shape
        if not model.mask.any():
            self._fitted_nothing(history)
            return
        fitter = self.fitters.get(type(self.cfg))
        try:
            with (
                warnings.catch_warnings(),
                np.errstate(divide="ignore", invalid="ignore"),
                numba_threads(threads) as usable,
            ):
                # nrt warns for every short series it masks; the log line after the fit gives the count.
                warnings.simplefilter("ignore")
                kwargs = self._fit_kwargs(bands, usable)
                # nrt sets numba's thread count from n_threads itself; numba_threads restores it.
                if fitter is None:
                    model.fit(history, **kwargs)
                else:
                    fitter(model, history, kwargs)
        except ValueError as exc:
            if "sufficient" not in str(exc):
                raise
            model.mask[model.mask == MONITORED] = SHORT
            self._fitted_nothing(history)
            return
        if vars(model).get("process", 0) is None:  # MoSum's process is a property computed from its window
            model.process = np.zeros(shape, dtype=np.uint8)
        model.detection_date = np.zeros(shape, dtype=np.uint16)

    def _fitted_nothing(self, history: xr.DataArray) -> None:
        """An empty state that can still be saved: the model gets its coordinates."""
        self.model.set_xy(history)
        self.state.empty = True

    def derived(self) -> Derived:
        """The state's Derived, rebuilt when any of its sources is no longer the same object."""
        sources = tuple(getattr(self.model, name, None) for name in self.derived_from)
        cached = self.state.derived
        if cached is not None and all(a is b for a, b in zip(cached.sources, sources, strict=True)):
            return cached
        beta = np.asarray(self.model.beta)
        with np.errstate(invalid="ignore"):
            lower, upper = self.limits()
        self.state.derived = Derived(
            sources,
            beta.reshape(beta.shape[0], -1).astype(np.float64),
            np.ascontiguousarray(self.sigma()).reshape(-1),
            lower,
            upper,
        )
        return self.state.derived

    def absorb(self, array: np.ndarray, when: dt.datetime) -> None:
        """Nrt's monitor step, then our run bookkeeping (the same residuals and anomaly test for both)."""
        if self.state.empty:
            return
        model = self.model
        values, finite = _observation(array)
        naive = naive_utc(when)
        derived = self.derived()
        prediction = nrt_boundary.predict(model, naive, derived.beta).reshape(values.shape)
        residuals = values - prediction
        valid = (model.mask == MONITORED) & finite
        outside = self._outside(residuals, derived)
        nrt_boundary.monitor_step(model, values, naive, prediction, outside if self.counts_outliers else None)
        self._note_runs(derived, residuals.reshape(-1), valid, valid & outside, days_since_epoch(naive))

    def outside(self, residuals: np.ndarray) -> np.ndarray:
        """The anomaly test with the cached limits."""
        return self._outside(residuals, self.derived())

    def _outside(self, residuals: np.ndarray, derived: Derived) -> np.ndarray:
        """The anomaly test given the limits (default: |residual| beyond the upper limit)."""
        with np.errstate(invalid="ignore"):
            return np.abs(residuals) > derived.upper

    def _note_runs(
        self, derived: Derived, residuals: np.ndarray, valid: np.ndarray, anomalous: np.ndarray, day: int
    ) -> None:
        """Our run bookkeeping after one acquisition (flat arrays; anomalies are few, so updated by index)."""
        extras = self.state.extras
        mask = np.asarray(self.model.mask)
        first, count, total, score = (_flat_extra(extras, name) for name in EXTRA_LAYERS)
        at = np.flatnonzero(anomalous)
        first[at[count[at] == 0]] = day
        count[at] += 1
        total[at] += residuals[at].astype(np.float32)
        score[at] += (np.abs(residuals[at]) / derived.sigma[at]).astype(np.float32)
        # A break confirmed without a run of single anomalies (CuSum/MoSum accumulate small residuals): date and
        # score come from the confirming observation.
        silent = np.flatnonzero((mask == BREAK).reshape(-1) & valid.reshape(-1) & (count == 0))
        first[silent] = day
        count[silent] = 1
        total[silent] = residuals[silent].astype(np.float32)
        score[silent] = (np.abs(residuals[silent]) / derived.sigma[silent]).astype(np.float32)
        # A clear, normal observation ends the run; clouds (invalid) do not.
        ended = (valid & ~anomalous & (mask == MONITORED)).reshape(-1)
        # Only where a layer holds any bit (-0.0 included): a masked write of every pixel of four layers costs 40x.
        holding = (first != 0) | (count != 0) | (total.view(np.uint32) != 0) | (score.view(np.uint32) != 0)
        ended = np.flatnonzero(ended & holding)
        for values in (first, count, total, score):
            values[ended] = 0

    def stage(self) -> np.ndarray:
        """Confirmed where nrt confirmed a break; the family's pending stages elsewhere (none in an empty state)."""
        mask = np.asarray(self.model.mask)
        stage = np.zeros(mask.shape, dtype=np.uint8)
        if not self.state.empty:
            self._pending(stage, mask == MONITORED)
        stage[mask == BREAK] = STAGE_CONFIRMED
        return stage

    def _pending(self, stage: np.ndarray, monitored: np.ndarray) -> None:
        """Set the first (1) and provisional (2) stages of monitored pixels."""
        run = self.state.extras["run_count"]
        stage[monitored & (run == 1)] = STAGE_FIRST
        stage[monitored & (run >= 2)] = STAGE_PROVISIONAL

    def layers(self, cfg: MonitorConfig) -> dict[str, np.ndarray]:
        """Magnitude and confidence are the run's means; the confirmation date is nrt's detection date."""
        extras = self.state.extras
        mask = np.asarray(self.model.mask)
        count = extras["run_count"].astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            magnitude = np.where(count > 0, extras["run_sum"] / count, np.nan).astype(np.float32)
            confidence = np.where(count > 0, extras["run_score"] / count, np.nan).astype(np.float32)
        high = np.nan_to_num(confidence, nan=0.0) >= cfg.high_confidence
        detected = getattr(self.model, "detection_date", None)
        confirmed = np.zeros(mask.shape, np.uint16) if self.state.empty or detected is None else np.asarray(detected)
        return alert_layers(
            status_codes(self.stage(), high, mask), extras["first_date"], confirmed, magnitude, confidence
        )


def _observation(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The acquisition as float64 with NaN wherever it is not finite, and where it is finite."""
    values = np.array(array, dtype=np.float64)
    finite = np.isfinite(values)
    # Clouds are NaN already; only infinities need replacing (a masked copy of every pixel costs 5x this).
    if not finite.all():
        infinite = np.isinf(values)
        if infinite.any():
            values[infinite] = np.nan
    return values, finite


def _flat_extra(extras: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A flat view of an extra layer (made contiguous first, so writes through the view reach the layer)."""
    if not extras[name].flags.c_contiguous:
        extras[name] = np.ascontiguousarray(extras[name])
    return extras[name].reshape(-1)
