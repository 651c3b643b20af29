"""The monitor interface: a tile's MonitorState and the Monitor class each family of algorithms implements."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from catalog.encoding import DATE_NODATA, Status
from catalog.series import ModelExport, ModelForm
from scheduler.config import MonitorConfig
from scheduler.pixel_codes import (
    BREAK,
    MONITORED,
    NOT_MONITORED,
    SHORT,
    STAGE_CONFIRMED,
    STAGE_FINISHED,
    STAGE_FIRST,
    STAGE_PROVISIONAL,
    UNSTABLE,
)

# Our own per-pixel bookkeeping beside the model's state: the current run of anomalous observations.
EXTRA_LAYERS = {
    "first_date": np.uint16,  # days since 1970-01-01 of the run's first anomalous observation
    "run_count": np.uint16,  # anomalous observations in the current run
    "run_sum": np.float32,  # sum of residuals (observed - expected) over the run
    "run_score": np.float32,  # sum of |residual| / sigma over the run
}

# The state file's key (among the model's scalars, where earlier versions kept it) of MonitorState.series.
SERIES_ATTR = "nrt_alerts_series"


@dataclass
class MonitorState:
    """A fitted model plus our run bookkeeping; everything a tile needs to continue monitoring."""

    monitor: Any  # the model: an nrt monitor or a CCDCNRT; its attributes are what the state file stores
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    empty: bool = False  # nothing in the tile could be fitted (no forest, or no clear history)
    # The series chunks published for the acquisitions absorbed (oldest first) and the monitoring start:
    # {"chunks": [...], "monitoring_start": "YYYY-MM-DD"} (scheduler/series_chunks.py keeps it).
    series: dict[str, Any] = field(default_factory=dict)
    # What absorb derives from the fitted arrays, kept between acquisitions; never saved (see Derived).
    derived: Derived | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the derived arrays (rebuilt on demand): a state sent between processes stays its size."""
        return {name: value for name, value in vars(self).items() if name != "derived"}


@dataclass(frozen=True)
class Derived:
    """What absorb needs that depends only on the fitted state, computed once per state instead of per acquisition."""

    sources: tuple[Any, ...]  # the model attributes it was computed from (compared by identity)
    beta: np.ndarray  # (coefficients, pixels) float64: nrt's predict casts its float32 beta on every call
    sigma: np.ndarray  # Monitor.sigma, flat
    lower: np.ndarray | None  # Monitor.limits
    upper: np.ndarray | None


def naive_utc(when: dt.datetime) -> dt.datetime:
    """A naive UTC datetime.datetime (nrt subtracts datetime(1970, 1, 1) from the dates it is given)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


class Monitor(ABC):
    """One family of monitoring algorithms over one tile's MonitorState.

    A family is looked up from the config's class (`monitor_for`) or from a state's model (`monitor_of`). Every
    method works on `self.state`; `cfg` is known for a monitor created from the config (fit needs it).
    """

    # The config classes this family monitors with, and the model class each builds (scheduler/monitors/registry.py).
    models: ClassVar[dict[type, type]] = {}
    # Model attributes that Derived depends on: a refit, a load or a restore replaces them.
    derived_from: ClassVar[tuple[str, ...]] = ()
    # Whether row blocks of a state may absorb side by side (pixels independent, no per-date bookkeeping).
    splittable: ClassVar[bool] = True

    def __init__(self, state: MonitorState, cfg: MonitorConfig | None = None) -> None:
        self.state = state
        self.cfg = cfg

    @property
    def model(self) -> Any:
        """The state's model."""
        return self.state.monitor

    @classmethod
    def create(cls, cfg: MonitorConfig, forest: np.ndarray, monitoring_start: dt.date) -> Monitor:
        """An unfitted monitor on a forest mask (1 = monitor), with empty run bookkeeping."""
        model = cls.build(cfg, forest.astype(np.uint8), monitoring_start)
        extras = {name: np.zeros(forest.shape, dtype=dtype) for name, dtype in EXTRA_LAYERS.items()}
        return cls(MonitorState(model, extras), cfg)

    @classmethod
    @abstractmethod
    def build(cls, cfg: MonitorConfig, mask: np.ndarray, monitoring_start: dt.date) -> Any:
        """The unfitted model for `cfg` on a uint8 mask."""

    @abstractmethod
    def fit(self, history: xr.DataArray, bands: dict[str, xr.DataArray], threads: int) -> None:
        """Fit on the stable history; nothing fittable leaves an 'empty' state (insufficient history), not an error."""

    @abstractmethod
    def absorb(self, array: np.ndarray, when: dt.datetime) -> None:
        """Feed one acquisition (2-D index values, NaN = no observation) to the model and our bookkeeping."""

    @abstractmethod
    def spread(self) -> np.ndarray:
        """Each pixel's residual spread as the model estimates it (may hold NaN)."""

    def sigma(self) -> np.ndarray:
        """Each pixel's residual spread, the unit of our confidence (finite and positive)."""
        spread = np.nan_to_num(np.asarray(self.spread(), dtype=np.float32), nan=1.0)
        return np.maximum(spread, np.float32(1e-6))

    @abstractmethod
    def limits(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The single-observation anomaly test's limits on the residual (lower, upper); None where it has none."""

    @abstractmethod
    def outside(self, residuals: np.ndarray) -> np.ndarray:
        """Which residuals (observed - expected) are anomalous single observations."""

    @abstractmethod
    def stage(self) -> np.ndarray:
        """Per pixel: 0 none, 1 first, 2 provisional, 3 confirmed, 4 finished."""

    @abstractmethod
    def layers(self, cfg: MonitorConfig) -> dict[str, np.ndarray]:
        """The published alert layers (status, date, confirmed, magnitude, confidence) with cfg's report settings."""

    @abstractmethod
    def band_offsets(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The threshold band around the prediction, as (lower, upper) offsets, and how it is derived."""

    def model_form(self) -> ModelForm:
        """How the published coefficients evaluate (nrt's design matrix; families with their own override)."""
        model = self.model
        band = self.band_offsets()[2]
        return ModelForm(type(model).__name__, bool(model.trend), int(model.harmonic_order), "nrt", band=band)

    def export_model(self) -> ModelExport | None:
        """The fitted model per pixel and its threshold band, for the series plot; None when nothing was fitted."""
        beta = getattr(self.model, "beta", None)
        if self.state.empty or beta is None:
            return None
        lower, upper, _ = self.band_offsets()
        # Pixels with a fitted model: monitored, unstable history, or confirmed break (not: unmonitored, too short).
        fitted = np.isin(np.asarray(self.model.mask), (MONITORED, UNSTABLE, BREAK))
        return ModelExport(
            self.model_form(),
            np.where(fitted, np.asarray(beta, np.float32), np.nan).astype(np.float32),
            np.where(fitted, lower, np.nan).astype(np.float32),
            np.where(fitted, upper, np.nan).astype(np.float32),
        )


def status_codes(stage: np.ndarray, high: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Status codes from a stage (0 none, 1 first, 2 provisional, 3 confirmed, 4 finished) and confidence."""
    status = np.full(stage.shape, Status.NONE, dtype=np.uint8)
    for value, low_code, high_code in (
        (STAGE_FIRST, Status.FIRST_LOW, Status.FIRST_HIGH),
        (STAGE_PROVISIONAL, Status.PROVISIONAL_LOW, Status.PROVISIONAL_HIGH),
        (STAGE_CONFIRMED, Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH),
        (STAGE_FINISHED, Status.FINISHED_LOW, Status.FINISHED_HIGH),
    ):
        at = stage == value
        status[at] = np.where(high[at], high_code, low_code)
    status[mask == NOT_MONITORED] = Status.NOT_MONITORED
    status[mask == UNSTABLE] = Status.UNSTABLE_HISTORY
    status[mask == SHORT] = Status.INSUFFICIENT_HISTORY
    return status


def alert_layers(
    status: np.ndarray, date: np.ndarray, confirmed: np.ndarray, magnitude: np.ndarray, confidence: np.ndarray
) -> dict[str, np.ndarray]:
    """The published layers, blanked where there is no alert (confirmation dates only where confirmed)."""
    alert = (status >= 1) & (status <= 8)
    is_confirmed = np.isin(
        status, (Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH, Status.FINISHED_LOW, Status.FINISHED_HIGH)
    )
    return {
        "status": status,
        "date": np.where(alert, date, DATE_NODATA).astype(np.uint16),
        "confirmed": np.where(is_confirmed, confirmed, DATE_NODATA).astype(np.uint16),
        "magnitude": np.where(alert, magnitude, np.nan).astype(np.float32),
        "confidence": np.where(alert, confidence, np.nan).astype(np.float32),
    }
