"""SEPAL's CCDC-based near-real-time change alerts as an incremental per-pixel monitor.

SEPAL (openforis/sepal ``changeAlertsAlgorithm.js``) recomputes a short moving window of observations at every run.
Here the same rules run incrementally: the per-pixel state is kept between scheduled runs (plain numpy arrays and
scalars, so ``scheduler/state.py`` can store it) and each ``monitor()`` call absorbs one acquisition.

Deployment semantics
--------------------
Model. ``fit`` solves, per pixel and NaN-aware, ``pred(t) = c0 + c1*t + sum_k [a_k cos(2 pi k t) + b_k sin(2 pi k t)]``
with ``t`` in years of 365.25 days since 1970-01-01 (``beta`` holds ``c0, c1, a_1, b_1, a_2, b_2, ...``; no ``c1``
when ``trend`` is False). ``rmse = sqrt(SSR / (n - p))``. Pixels with input mask 0 get mask 0; pixels with fewer than
1.5 x p clear observations get mask 4; the others mask 1. Only acquisitions before ``monitoring_start`` are fitted;
when it is not given it is the day after the last acquisition of the data array.

Observation. At date ``t`` each monitored clear pixel gets ``difference = pred(t - 1 year) - obs`` (positive = the
index dropped), ``confidence = |difference| / rmse`` and ``change = confidence > min_confidence``; with
``direction='decrease'`` (``'increase'``) only ``difference > 0`` (``< 0``) can be a change. NaN = no observation: it
is skipped and does not count. Acquisitions must arrive in date order, none before ``monitoring_start``.

Periods. Days ``[monitoring_start, monitoring_start + calibration_days)`` are the calibration period, every later day
is monitoring (open-ended). Dates are whole days since 1970-01-01 (uint16, 0 = none).

Windows. Each pixel keeps its last ``window`` (N) change flags and their dates, confidences and differences, so the
windows of N consecutive valid observations are exact across runs. A window is a change window with at least
``min_changes`` (M) changes, a stable window with at least M non-changes. A stable window sets ``last_stable_date``
(its newest non-change observation, as SEPAL does: for M = N that is the window's last observation) and arms the pixel.
A change window counts only on an armed pixel; pixels start armed unless ``must_be_stable_before_change``. (SEPAL
compares the change window with the first stable observation; for M = N both rules agree.)

Alert. The first counted change window confirms the alert: ``first_detection_date`` / ``confirmation_date`` are its
oldest / newest change observation. With ``must_be_confirmed_in_monitoring`` an alert confirmed in the calibration
period is dropped (not stored) and the pixel is disarmed: it may be re-detected, but only after a new stable window,
so a disturbance that started before monitoring and lasts is never reported as new. Every later change window sets
``last_detection_date`` to its newest change observation. ``confidence`` and ``difference`` are means, and
``detection_count`` the number, of the change observations from the first to the last detection.

Recovery (``must_stay_changed``). A stable window at or after the last detection ends the alert. If the alert was
short-lived (``last_stable_date - first_detection_date <= monitoring_days``: outlier run, haze, quick regrowth) and
``must_stay_changed`` holds, it is withdrawn: erased, and the pixel stays monitored, so a later disturbance is a new
alert with its own dates. Otherwise (longer alerts, or ``must_stay_changed=False``) the alert is finished: kept and
reported, and the pixel is frozen with mask 3 (nrt's "confirmed break", no longer monitored) until it is re-fitted.

Stages (``alert_stage``). 3 confirmed: an alert, not frozen, last detected at most ``monitoring_days`` before the
latest acquisition date given to ``monitor`` (SEPAL's monitoring window). 4 finished: frozen (mask 3), or an alert
with no new detection for more than ``monitoring_days`` (still reported; a new change window makes it 3 again). On
pixels without an alert, when the newest observation is a change: 1 first (the only change in the current window),
2 provisional (2 to M - 1 changes in the current window). Everything else 0.

Layers. The date layers, means and ``detection_count`` are filled for confirmed and finished alerts (0 / NaN
otherwise); ``last_stable_date`` and the observation counts are kept for every monitored pixel. Frozen pixels stop
counting observations.

Differences from SEPAL, all due to the open-ended period: the withdrawal/finish split and the re-arming above;
``detection_count`` and the means cover change observations only (SEPAL: every observation between the first and
last detection); SEPAL's extra drop of a pixel whose first change window was not eligible is not applied (the change
window is simply ignored until the pixel is stable).
"""

from __future__ import annotations

import datetime as dt
import logging
import math

import numpy as np
import xarray as xr
from scipy import ndimage

from catalog.design import ccdcnrt_design
from scheduler.errors import NotFittedError
from scheduler.pixel_codes import (
    BREAK,
    MONITORED,
    NOT_MONITORED,
    SHORT,
    STAGE_CONFIRMED,
    STAGE_FINISHED,
    STAGE_FIRST,
    STAGE_PROVISIONAL,
)
from scheduler.spatial import regional_median

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1)
YEAR_DAYS = 365.25
SECONDS_PER_DAY = 86400.0

# nrt's mask code 3 (a confirmed break) marks a finished (frozen) alert here.
FINISHED = BREAK

MIN_OBS_FACTOR = 1.5
# 1.4826 x the median absolute deviation estimates a normal distribution's sigma.
MAD_TO_SIGMA = 1.4826
# A noiseless history has rmse 0; the floor keeps confidence finite instead of inf or NaN.
RMSE_FLOOR = 1e-9
# Pixels per block in fit: bounds its working arrays (time x pixels float64, pixels x p x p) to ~200 MB at 150 dates.
FIT_BLOCK = 65536
MAX_WINDOW = 16  # change flags live in a uint16 bitmask
U16_MAX = np.iinfo(np.uint16).max
DIRECTIONS = ("both", "decrease", "increase")

_LAYER_DATES = ("first_detection_date", "confirmation_date", "last_detection_date", "last_stable_date")
_LAYER_COUNTS = ("detection_count", "monitoring_observation_count", "calibration_observation_count")


def _naive_utc(when: dt.datetime | dt.date) -> dt.datetime:
    """A naive UTC datetime from a (possibly aware) datetime or a date."""
    if not isinstance(when, dt.datetime):
        if isinstance(when, dt.date):
            return dt.datetime(when.year, when.month, when.day)
        raise TypeError(f"date must be a datetime.datetime, not {type(when).__name__}")
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _day(when: dt.datetime) -> int:
    """Whole days since 1970-01-01."""
    return (when.date() - EPOCH.date()).days


def _years(when: dt.datetime) -> float:
    """Years of 365.25 days since 1970-01-01, the model's time axis."""
    return (when - EPOCH).total_seconds() / SECONDS_PER_DAY / YEAR_DAYS


def _column_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of each column's count[j] finite values (the non-finite ones, +inf, sort after them)."""
    ordered = np.sort(values, axis=0)
    low = np.maximum(count - 1, 0) // 2
    high = np.maximum(count, 1) // 2
    take = np.take_along_axis
    median = 0.5 * (take(ordered, low[None, :], 0)[0] + take(ordered, np.minimum(high, len(values) - 1)[None, :], 0)[0])
    return np.where(count > 0, median, np.nan)


def _saturating_add(array: np.ndarray, where: np.ndarray, amount: np.ndarray | int = 1) -> None:
    """Add to a uint16 counter at flat indices without wrapping round."""
    total = array[where].astype(np.int64) + amount
    array[where] = np.minimum(total, U16_MAX).astype(array.dtype)


def _lowest_bit(bits: np.ndarray) -> np.ndarray:
    """Index of the lowest set bit of each (non-zero) integer."""
    bits = bits.astype(np.int64)
    return np.bitwise_count((bits & -bits) - 1).astype(np.intp)


class CCDCNRT:
    """Incremental CCDC-NRT change alerts (SEPAL's rules), vectorised over pixels."""

    def __init__(
        self,
        mask: np.ndarray | None = None,
        *,
        harmonic_order: int = 3,
        trend: bool = True,
        min_confidence: float = 5.0,
        window: int = 3,
        min_changes: int = 3,
        calibration_days: int = 91,
        monitoring_days: int = 61,
        must_be_confirmed_in_monitoring: bool = True,
        must_be_stable_before_change: bool = True,
        must_stay_changed: bool = True,
        direction: str = "both",
        monitoring_start: dt.date | None = None,
        armed_by_history: bool = False,
        history_outliers: float | None = None,
        regional_block: int = 0,
        outlier_neighbours: int = 0,
    ) -> None:
        """Set the parameters; the per-pixel state is created by fit."""
        if harmonic_order < 0:
            raise ValueError("harmonic_order must be >= 0")
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be in 1..{MAX_WINDOW}")
        if not 1 <= min_changes <= window:
            raise ValueError("min_changes must be in 1..window")
        if calibration_days < 0 or monitoring_days < 0:
            raise ValueError("calibration_days and monitoring_days must be >= 0")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        self.mask = None if mask is None else np.array(mask, dtype=np.uint8)
        self.harmonic_order = int(harmonic_order)
        self.trend = bool(trend)
        self.min_confidence = float(min_confidence)
        self.window = int(window)
        self.min_changes = int(min_changes)
        self.calibration_days = int(calibration_days)
        self.monitoring_days = int(monitoring_days)
        self.must_be_confirmed_in_monitoring = bool(must_be_confirmed_in_monitoring)
        self.must_be_stable_before_change = bool(must_be_stable_before_change)
        self.must_stay_changed = bool(must_stay_changed)
        self.direction = direction
        self.armed_by_history = bool(armed_by_history)
        self.history_outliers = None if not history_outliers else float(history_outliers)
        if regional_block < 0:
            raise ValueError("regional_block must be >= 0")
        self.regional_block = int(regional_block)
        if not 0 <= outlier_neighbours <= 8:
            raise ValueError("outlier_neighbours must be in 0..8")
        self.outlier_neighbours = int(outlier_neighbours)
        # ISO strings, not date objects: the state file keeps scalars as JSON.
        self.monitoring_start = None if monitoring_start is None else _naive_utc(monitoring_start).date().isoformat()
        self.monitoring_start_day: int | None = None  # effective, set by fit
        self.last_date: str | None = None  # the latest acquisition given to monitor
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None

    @property
    def n_coef(self) -> int:
        """Number of model coefficients per pixel."""
        return 1 + int(self.trend) + 2 * self.harmonic_order

    def _design(self, years: np.ndarray, origin: float = 0.0) -> np.ndarray:
        """Design matrix (len(years), n_coef): 1, t - origin, cos/sin pairs by harmonic (catalog/design.py)."""
        return ccdcnrt_design(years, self.trend, self.harmonic_order, origin)

    def fit(self, dataarray: xr.DataArray) -> None:
        """Fit the per-pixel harmonic model on the history and reset all monitoring state."""
        if set(dataarray.dims) != {"time", "y", "x"}:
            raise ValueError(f"expected dims (time, y, x), got {dataarray.dims}")
        dataarray = dataarray.transpose("time", "y", "x")
        seconds = dataarray["time"].values.astype("datetime64[s]").astype(np.int64)
        if np.any(np.diff(seconds) < 0):
            raise ValueError("time must be sorted")
        if seconds.size == 0:
            raise ValueError("no acquisitions to fit")
        days = seconds / SECONDS_PER_DAY
        if self.monitoring_start is None:
            start_day = int(math.floor(days[-1])) + 1
        else:
            start_day = _day(dt.datetime.fromisoformat(self.monitoring_start))
        history = days < start_day
        if not history.any():
            raise ValueError(f"no acquisition before monitoring_start (day {start_day})")
        shape = (dataarray.sizes["y"], dataarray.sizes["x"])
        if self.mask is not None and self.mask.shape != shape:
            raise ValueError(f"mask shape {self.mask.shape} does not match the data {shape}")
        wanted = np.ones(shape, dtype=bool) if self.mask is None else self.mask != NOT_MONITORED
        data = np.asarray(dataarray.data)[history].reshape(int(history.sum()), -1)
        beta, rmse, n_obs = self._solve(days[history] / YEAR_DAYS, data, wanted.reshape(-1))
        fitted = np.isfinite(rmse)
        mask = np.where(fitted, MONITORED, np.where(wanted.reshape(-1), SHORT, NOT_MONITORED))
        self.mask = mask.astype(np.uint8).reshape(shape)
        self.beta = beta.reshape((self.n_coef, *shape))
        self.rmse = rmse.reshape(shape)
        self.history_observation_count = np.minimum(n_obs, U16_MAX).astype(np.uint16).reshape(shape)
        self.monitoring_start_day = start_day
        self.last_date = None
        self.x = np.asarray(dataarray["x"].values) if "x" in dataarray.coords else np.arange(shape[1], dtype=float)
        self.y = np.asarray(dataarray["y"].values) if "y" in dataarray.coords else np.arange(shape[0], dtype=float)
        self._reset_monitoring(shape)
        if self.must_be_stable_before_change and self.armed_by_history:
            stable = self._stable_tail(days[history], data, beta)
            self.armed = (stable & fitted).astype(np.uint8).reshape(shape)

    def _stable_tail(self, days: np.ndarray, data: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Pixels whose last `window` clear history observations hold a stable window (the monitoring rule).

        The fitted history plays SEPAL's calibration period: a pixel already stable at its end is armed at once, so a
        disturbance in the first days of monitoring is alerted; a pixel changing at the history's end is not.
        """
        n_pix = data.shape[1]
        seen = np.zeros(n_pix, dtype=np.int64)
        stable = np.zeros(n_pix, dtype=np.int64)
        fitted = np.isfinite(beta[0])
        for t in range(len(days) - 1, -1, -1):
            idx = np.flatnonzero((seen < self.window) & np.isfinite(data[t]) & fitted)
            if idx.size == 0:
                if not (seen < self.window).any():
                    break
                continue
            row = self._design(np.array([days[t] / YEAR_DAYS - 1.0]))[0]
            difference = row @ beta[:, idx] - data[t, idx].astype(np.float64)
            seen[idx] += 1
            stable[idx] += ~self._is_change(difference, idx)[1]
        return (seen >= self.window) & (stable >= self.min_changes)

    def _is_change(self, difference: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, change) of pixels idx: |difference| / RMSE beyond min_confidence, in the direction."""
        rmse = np.maximum(self.rmse.reshape(-1)[idx].astype(np.float64), RMSE_FLOOR)
        confidence = np.abs(difference) / rmse
        change = confidence > self.min_confidence
        if self.direction == "decrease":
            change &= difference > 0
        elif self.direction == "increase":
            change &= difference < 0
        return confidence, change

    def _solve(self, years: np.ndarray, data: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, ...]:
        """Batched NaN-aware least squares: (beta (p, n) float64, rmse (n,) float32, clear counts (n,))."""
        n_coef = self.n_coef
        # Centring the trend keeps the normal equations well conditioned (t is ~55 years from the epoch).
        origin = float(years.mean())
        design = self._design(years, origin)
        n_pix = data.shape[1]
        beta = np.full((n_coef, n_pix), np.nan)
        rmse = np.full(n_pix, np.nan, dtype=np.float32)
        n_obs = np.zeros(n_pix, dtype=np.int64)
        for start in range(0, n_pix, FIT_BLOCK):
            block = slice(start, min(start + FIT_BLOCK, n_pix))
            values = data[:, block].astype(np.float64)
            clear = np.isfinite(values) & wanted[block][None, :]
            np.copyto(values, 0.0, where=~clear)
            n_obs[block] = clear.sum(axis=0)
            coef, block_rmse, ok = self._least_squares(design, values, clear)
            if ok.any() and self.history_outliers:
                # Clouds and shadows the mask called clear inflate the RMSE and hide small clearings behind it:
                # drop history observations beyond history_outliers robust sigmas (MAD) and fit again.
                # The residuals of a fit with an intercept are centred: their median absolute value is the MAD.
                deviation = np.abs(np.where(clear, values - design @ coef.T, np.inf))
                mad = _column_median(deviation, clear.sum(axis=0))
                inlier = deviation <= self.history_outliers * MAD_TO_SIGMA * np.maximum(mad, RMSE_FLOOR)
                inlier &= clear & ok[None, :]
                # A pixel keeps its first fit when screening would leave it too few observations.
                refit = inlier.sum(axis=0) >= MIN_OBS_FACTOR * n_coef
                screened = np.where(refit[None, :], inlier, clear)
                coef, block_rmse, ok2 = self._least_squares(design, np.where(screened, values, 0.0), screened)
                ok &= ok2
            block_rmse = np.where(ok, block_rmse, np.nan)
            rmse[block] = block_rmse.astype(np.float32)
            if self.trend:
                coef[:, 0] -= coef[:, 1] * origin
            beta[:, block] = np.where(ok, coef.T, np.nan)
        return beta, rmse, n_obs

    def _least_squares(
        self, design: np.ndarray, values: np.ndarray, clear: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-pixel least squares over the clear observations: (coef (n, p), rmse (n,), fitted (n,))."""
        n_coef = self.n_coef
        count = clear.sum(axis=0)
        ok = count >= MIN_OBS_FACTOR * n_coef
        coef = np.zeros((values.shape[1], n_coef))
        if not ok.any():
            return coef, np.full(values.shape[1], np.nan), ok
        # Per-pixel X^T W X for all pixels in one matrix product: W^T @ (row-wise outer products of X).
        outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), n_coef * n_coef)
        xtx = (clear.astype(np.float64).T @ outer).reshape(-1, n_coef, n_coef)
        xty = (design.T @ values).T[..., None]
        # Solving every pixel of the block (identity for the unfitted ones) beats gathering the fitted columns.
        xtx[~ok] = np.eye(n_coef)
        xty[~ok] = 0.0
        try:
            coef = np.linalg.solve(xtx, xty)[..., 0]
        except np.linalg.LinAlgError:
            # A singular system (clear dates that cannot separate the harmonics) fails the whole batch:
            # the pseudo-inverse gives the minimum-norm solution for those pixels instead.
            coef = (np.linalg.pinv(xtx) @ xty)[..., 0]
        # SSR = y'Wy - beta'X'Wy at the least-squares solution: no (time, pixels) residual array needed.
        ssr = np.einsum("tn,tn->n", values, values) - np.einsum("np,np->n", coef, xty[..., 0])
        ssr = np.maximum(ssr, 0.0)  # rounding can push an exact fit below zero
        dof = np.maximum(count - n_coef, 1)
        return coef, np.where(ok, np.sqrt(ssr / dof), np.nan), ok

    def _reset_monitoring(self, shape: tuple[int, int]) -> None:
        """Create the per-pixel window, alert and counter arrays (nothing absorbed yet)."""
        ring = (self.window, *shape)
        self.flags = np.zeros(shape, dtype=np.uint16)  # bit 0 = newest valid observation is a change
        self.window_fill = np.zeros(shape, dtype=np.uint8)  # valid observations so far, capped at window
        self.ring_pos = np.zeros(shape, dtype=np.uint8)  # ring slot of the newest observation
        self.ring_date = np.zeros(ring, dtype=np.uint16)
        self.ring_confidence = np.zeros(ring, dtype=np.float32)
        self.ring_difference = np.zeros(ring, dtype=np.float32)
        self.armed = np.full(shape, 0 if self.must_be_stable_before_change else 1, dtype=np.uint8)
        for name in _LAYER_DATES + _LAYER_COUNTS + ("pending_count",):
            setattr(self, name, np.zeros(shape, dtype=np.uint16))
        for name in ("sum_confidence", "sum_difference", "pending_confidence", "pending_difference"):
            setattr(self, name, np.zeros(shape, dtype=np.float32))

    def _check_fitted(self) -> None:
        """Raise NotFittedError before fit."""
        if self.monitoring_start_day is None or getattr(self, "beta", None) is None:
            raise NotFittedError("CCDCNRT: call fit() first")

    def _ensure_writable(self) -> None:
        """Make every state array contiguous and writable, so flat views write through (restored arrays may not be)."""
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and name not in ("x", "y"):
                if not (value.flags.c_contiguous and value.flags.writeable):
                    setattr(self, name, np.array(value, order="C"))

    def predict(self, date: dt.datetime) -> np.ndarray:
        """The model's value at date (2-D float64, NaN where not fitted)."""
        self._check_fitted()
        row = self._design(np.array([_years(_naive_utc(date))]))[0]
        return np.tensordot(row, self.beta, axes=1)

    def monitor(self, array: np.ndarray, date: dt.datetime) -> None:
        """Absorb one acquisition (2-D index values, NaN = no observation) dated date (naive = UTC)."""
        self._check_fitted()
        when = _naive_utc(date)
        day = _day(when)
        if day < self.monitoring_start_day:
            raise ValueError(f"{when} is before monitoring_start (day {self.monitoring_start_day})")
        if self.last_date is not None and when < dt.datetime.fromisoformat(self.last_date):
            raise ValueError(f"{when} is earlier than the last absorbed acquisition {self.last_date}")
        array = np.asarray(array)
        if array.shape != self.mask.shape:
            raise ValueError(f"array shape {array.shape} does not match the state {self.mask.shape}")
        self._ensure_writable()
        self.last_date = when.isoformat()
        values = array.reshape(-1)
        idx = np.flatnonzero((self.mask.reshape(-1) == MONITORED) & np.isfinite(values))
        if idx.size == 0:
            return
        row = self._design(np.array([_years(when) - 1.0]))[0]  # SEPAL compares with the model one year earlier
        reference = row @ self.beta.reshape(self.n_coef, -1)[:, idx]
        difference = reference - values[idx].astype(np.float64)
        if self.regional_block:
            difference -= self._regional(difference, idx)
        confidence, change = self._is_change(difference, idx)
        self._absorb(idx, day, change, confidence.astype(np.float32), difference.astype(np.float32))

    def _regional(self, difference: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The regional part of the pixels' differences: the median of unalerted pixels per block, interpolated.

        Smoke, haze and a drought move every pixel of a region by about the same amount, a clearing only its own:
        the median over regional_block x regional_block pixels (larger than the largest clearing) follows the first.
        """
        shape = self.mask.shape
        quiet = self.confirmation_date.reshape(-1)[idx] == 0
        grid = np.full(shape[0] * shape[1], np.nan)
        grid[idx[quiet]] = difference[quiet]
        return regional_median(grid.reshape(shape), self.regional_block).reshape(-1)[idx]

    def _flat(self, name: str) -> np.ndarray:
        """Flat (pixels,) or (k, pixels) view of a state array."""
        value = getattr(self, name)
        return value.reshape(value.shape[0], -1) if value.ndim == 3 else value.reshape(-1)

    def _absorb(
        self, idx: np.ndarray, day: int, change: np.ndarray, confidence: np.ndarray, difference: np.ndarray
    ) -> None:
        """Update windows, alerts and counters of the pixels idx with one valid observation each."""
        n, m = self.window, self.min_changes
        f = {name: self._flat(name) for name in vars(self) if isinstance(getattr(self, name), np.ndarray)}
        calibration = day < self.monitoring_start_day + self.calibration_days
        counter = "calibration_observation_count" if calibration else "monitoring_observation_count"
        _saturating_add(f[counter], idx)

        # Push the observation into the per-pixel window.
        pos = (f["ring_pos"][idx].astype(np.intp) + 1) % n
        f["ring_pos"][idx] = pos
        f["ring_date"][pos, idx] = day
        f["ring_confidence"][pos, idx] = confidence
        f["ring_difference"][pos, idx] = difference
        flags = ((f["flags"][idx].astype(np.int64) << 1) | change) & ((1 << n) - 1)
        f["flags"][idx] = flags
        fill = np.minimum(f["window_fill"][idx] + 1, n)
        f["window_fill"][idx] = fill
        n_change = np.bitwise_count(flags)
        complete = fill == n
        change_window = complete & (n_change >= m)
        stable_window = complete & (n - n_change >= m)
        had_alert = f["confirmation_date"][idx] != 0

        def window_date(sel: np.ndarray, bits: np.ndarray) -> np.ndarray:
            """Date of the newest observation whose flag bit is set in bits, in the window of pixels idx[sel]."""
            slot = (pos[sel] - _lowest_bit(bits)) % n
            return f["ring_date"][slot, idx[sel]]

        # An alert accumulates its change observations; each change window extends it to its newest change.
        growing = had_alert & change
        gi = idx[growing]
        _saturating_add(f["pending_count"], gi)
        f["pending_confidence"][gi] += confidence[growing]
        f["pending_difference"][gi] += difference[growing]
        extend = had_alert & change_window
        ei = idx[extend]
        _saturating_add(f["detection_count"], ei, f["pending_count"][ei])
        f["sum_confidence"][ei] += f["pending_confidence"][ei]
        f["sum_difference"][ei] += f["pending_difference"][ei]
        for name in ("pending_count", "pending_confidence", "pending_difference"):
            f[name][ei] = 0
        f["last_detection_date"][ei] = window_date(extend, flags[extend])

        # A stable window arms the pixel and may end its alert.
        si = idx[stable_window]
        f["last_stable_date"][si] = window_date(stable_window, ~flags[stable_window] & ((1 << n) - 1))
        f["armed"][si] = 1
        recovered = stable_window & had_alert & (f["last_stable_date"][idx] >= f["last_detection_date"][idx])
        ri = idx[recovered]
        span = f["last_stable_date"][ri].astype(np.int64) - f["first_detection_date"][ri]
        withdraw = (span <= self.monitoring_days) if self.must_stay_changed else np.zeros(ri.size, dtype=bool)
        wi = ri[withdraw]
        for name in _LAYER_DATES[:3] + ("detection_count", "pending_count"):
            f[name][wi] = 0
        for name in ("sum_confidence", "sum_difference", "pending_confidence", "pending_difference"):
            f[name][wi] = 0
        f["mask"][ri[~withdraw]] = FINISHED

        # The first counted change window confirms a new alert.
        new = ~had_alert & change_window & (f["armed"][idx] == 1)
        if not new.any():
            return
        ni, bits, slots = idx[new], flags[new], pos[new]
        first = np.zeros(ni.size, dtype=np.uint16)
        second = np.zeros(ni.size, dtype=np.uint16)
        last = np.zeros(ni.size, dtype=np.uint16)
        total_confidence = np.zeros(ni.size, dtype=np.float32)
        total_difference = np.zeros(ni.size, dtype=np.float32)
        for age in range(n):  # newest to oldest
            is_change = ((bits >> age) & 1).astype(bool)
            slot = (slots - age) % n
            dates = f["ring_date"][slot, ni]
            second = np.where(is_change, first, second)
            first = np.where(is_change, dates, first)
            last = np.where(is_change & (last == 0), dates, last)
            total_confidence += np.where(is_change, f["ring_confidence"][slot, ni], 0)
            total_difference += np.where(is_change, f["ring_difference"][slot, ni], 0)
        if self.outlier_neighbours and n > 1:
            # The run's first change was a passing cloud or halo that also hit forest around the pixel: the
            # disturbance starts with the run's next change (an alert is dated by its own change, not a cloud's).
            passing = self._spread(ni, first, self._passing_outlier(ni, first, f)) & (second != 0)
            first = np.where(passing, second, first)
        dropped = np.zeros(ni.size, dtype=bool)
        if self.must_be_confirmed_in_monitoring:
            dropped = last < self.monitoring_start_day + self.calibration_days
            if dropped.any():
                log.info(
                    "CCDC-NRT: %d pixels confirmed a change on day %d, in the calibration period (until day %d): "
                    "not reported (must_be_confirmed_in_monitoring); each needs a stable window before a new alert",
                    int(dropped.sum()),
                    day,
                    self.monitoring_start_day + self.calibration_days - 1,
                )
        # A change confirmed in calibration predates monitoring: re-detection needs a stable window first.
        f["armed"][ni[dropped]] = 0
        keep = ~dropped
        ki = ni[keep]
        f["first_detection_date"][ki] = first[keep]
        f["confirmation_date"][ki] = last[keep]
        f["last_detection_date"][ki] = last[keep]
        f["detection_count"][ki] = np.bitwise_count(bits[keep])
        f["sum_confidence"][ki] = total_confidence[keep]
        f["sum_difference"][ki] = total_difference[keep]
        for name in ("pending_count", "pending_confidence", "pending_difference"):
            f[name][ki] = 0

    def _spread(self, ni: np.ndarray, day: np.ndarray, passing: np.ndarray) -> np.ndarray:
        """Passing outliers spread over each patch of new alerts sharing their day.

        Inner pixels of a clearing have no quiet neighbours to tell a passing cloud; the patch's edge does.
        """
        if not passing.any():
            return passing
        grid = np.zeros(self.mask.size, dtype=bool)
        grid[ni] = True
        labels, _ = ndimage.label(grid.reshape(self.mask.shape), structure=np.ones((3, 3), dtype=bool))
        patch = labels.reshape(-1)[ni].astype(np.int64)
        key = patch * (U16_MAX + 1) + day
        return np.isin(key, key[passing])

    def _passing_outlier(self, ni: np.ndarray, day: np.ndarray, f: dict[str, np.ndarray]) -> np.ndarray:
        """Pixels ni with at least outlier_neighbours monitored neighbours changed on `day` and back to normal now."""
        height, width = self.mask.shape
        rows, cols = np.divmod(ni, width)
        count = np.zeros(ni.size, dtype=np.int64)
        n = self.window
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == dc == 0:
                    continue
                r, c = rows + dr, cols + dc
                inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
                q = np.where(inside, r * width + c, 0)
                flags = f["flags"][q].astype(np.int64)
                quiet = inside & (f["mask"][q] == MONITORED) & (f["confirmation_date"][q] == 0) & (flags & 1 == 0)
                changed = np.zeros(ni.size, dtype=bool)
                for age in range(n):
                    slot = (f["ring_pos"][q].astype(np.intp) - age) % n
                    seen = age < f["window_fill"][q]
                    changed |= seen & ((flags >> age) & 1 == 1) & (f["ring_date"][slot, q] == day)
                count += quiet & changed
        return count >= self.outlier_neighbours

    def layers(self) -> dict[str, np.ndarray]:
        """SEPAL's output bands: dates (uint16 days since 1970-01-01, 0 = none), means (NaN = no alert), counts."""
        self._check_fitted()
        alert = self.confirmation_date != 0
        count = self.detection_count.astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            confidence = np.where(alert, self.sum_confidence / count, np.nan).astype(np.float32)
            difference = np.where(alert, self.sum_difference / count, np.nan).astype(np.float32)
        out = {name: getattr(self, name).copy() for name in _LAYER_DATES + _LAYER_COUNTS}
        out["confidence"] = confidence
        out["difference"] = difference
        return out

    def pending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The change observations of each pixel's current window: (oldest date, mean confidence, mean difference).

        0 / NaN where the window holds no change. A first or provisional stage is dated and measured by these.
        """
        self._check_fitted()
        n = self.window
        date = np.zeros(self.mask.shape, dtype=np.uint16)
        confidence = np.zeros(self.mask.shape, dtype=np.float32)
        difference = np.zeros(self.mask.shape, dtype=np.float32)
        slot = self.ring_pos.astype(np.intp)[None]
        for age in range(n):  # newest to oldest: the oldest change's date is written last
            is_change = ((self.flags >> age) & 1).astype(bool) & (age < self.window_fill)
            at = (slot - age) % n
            date = np.where(is_change, np.take_along_axis(self.ring_date, at, 0)[0], date)
            confidence += np.where(is_change, np.take_along_axis(self.ring_confidence, at, 0)[0], 0)
            difference += np.where(is_change, np.take_along_axis(self.ring_difference, at, 0)[0], 0)
        count = np.bitwise_count(self.flags).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_confidence = np.where(count > 0, confidence / count, np.nan).astype(np.float32)
            mean_difference = np.where(count > 0, difference / count, np.nan).astype(np.float32)
        return date, mean_confidence, mean_difference

    def alert_stage(self) -> np.ndarray:
        """Per-pixel stage: 0 none, 1 first, 2 provisional, 3 confirmed, 4 finished (see the module docstring)."""
        self._check_fitted()
        stage = np.zeros(self.mask.shape, dtype=np.uint8)
        monitored = self.mask == MONITORED
        alert = monitored & (self.confirmation_date != 0)
        now = _day(dt.datetime.fromisoformat(self.last_date)) if self.last_date else self.monitoring_start_day
        stale = now - self.last_detection_date.astype(np.int64) > self.monitoring_days
        stage[alert] = np.where(stale[alert], STAGE_FINISHED, STAGE_CONFIRMED)
        n_change = np.bitwise_count(self.flags)
        pending = monitored & ~alert & ((self.flags & 1) == 1) & (n_change < self.min_changes)
        stage[pending & (n_change == 1)] = STAGE_FIRST
        stage[pending & (n_change >= 2)] = STAGE_PROVISIONAL
        stage[self.mask == FINISHED] = STAGE_FINISHED
        return stage
