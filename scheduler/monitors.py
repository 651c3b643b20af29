"""Every monitor behind one interface: build from config, fit, absorb one acquisition, report alert layers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from nrt.monitor import BaseNrt
from nrt.monitor.ccdc import CCDC
from nrt.monitor.cusum import CuSum
from nrt.monitor.ewma import EWMA
from nrt.monitor.iqr import IQR
from nrt.monitor.mosum import MoSum

from catalog.encoding import DATE_NODATA, Status, days_since_epoch
from catalog.series import SERIES_KEY, ChunkWriter, ModelExport, ModelForm, SeriesExport
from catalog.store import CatalogLayout
from scheduler.ccdcnrt import CCDCNRT, RMSE_FLOOR
from scheduler.config import (
    CCDCConfig,
    CCDCNRTConfig,
    Config,
    CuSumConfig,
    EWMAConfig,
    IQRConfig,
    MonitorConfig,
    MoSumConfig,
)
from scheduler.fits import fit_iqr
from scheduler.kernels import numba_threads
from scheduler.loading import acquisition_key
from scheduler.regressors import date_regressors

log = logging.getLogger(__name__)

MONITOR_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (IQR, CCDC, EWMA, CuSum, MoSum, CCDCNRT)}

# nrt's state mask codes (CCDCNRT uses the same).
NRT_NOT_MONITORED, NRT_MONITORED, NRT_UNSTABLE, NRT_BREAK, NRT_SHORT = 0, 1, 2, 3, 4

# Continuous-statistic monitors (EWMA, CuSum, MoSum) have no per-observation outlier test of their own; an
# observation beyond this many residual sigmas counts as anomalous for first/provisional stages.
ANOMALY_SIGMAS = 3.0

# Our own per-pixel bookkeeping beside nrt's state: the current run of anomalous observations.
EXTRA_LAYERS = {
    "first_date": np.uint16,  # days since 1970-01-01 of the run's first anomalous observation
    "run_count": np.uint16,  # anomalous observations in the current run
    "run_sum": np.float32,  # sum of residuals (observed - expected) over the run
    "run_score": np.float32,  # sum of |residual| / sigma over the run
}


@dataclass
class MonitorState:
    """A monitor plus our run bookkeeping; everything a tile needs to continue monitoring."""

    monitor: Any
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    empty: bool = False  # nothing in the tile could be fitted (no forest, or no clear history)
    # What absorb derives from the fitted arrays, kept between acquisitions; never saved (see _Derived).
    derived: _Derived | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the derived arrays (rebuilt on demand): a state sent between processes stays its size."""
        return {name: value for name, value in vars(self).items() if name != "derived"}


# The monitor attributes _Derived is computed from: a refit, a load or a restore replaces them.
DERIVED_SOURCES = ("beta", "q25", "q75", "rmse", "sigma", "sensitivity", "trend", "harmonic_order")


@dataclass(frozen=True)
class _Derived:
    """What absorb needs that depends only on the fitted state, computed once per state instead of per acquisition."""

    sources: tuple[Any, ...]  # the DERIVED_SOURCES objects it was computed from (compared by identity)
    beta: np.ndarray  # (coefficients, pixels) float64: nrt's predict casts its float32 beta on every call
    sigma: np.ndarray  # residual_sigma, flat
    lower: np.ndarray | None  # anomaly test: IQR's fences, or the |residual| limit of the sigma-based monitors
    upper: np.ndarray | None


def _sources(monitor: Any) -> tuple[Any, ...]:
    """The objects a monitor's _Derived depends on."""
    return tuple(getattr(monitor, name, None) for name in DERIVED_SOURCES)


def _derived(state: MonitorState) -> _Derived:
    """The state's _Derived, rebuilt when any of its sources is no longer the same object."""
    monitor = state.monitor
    sources = _sources(monitor)
    cached = state.derived
    if cached is not None and all(a is b for a, b in zip(cached.sources, sources, strict=True)):
        return cached
    beta = np.asarray(monitor.beta)
    lower, upper = _anomaly_limits(monitor)
    state.derived = _Derived(
        sources,
        beta.reshape(beta.shape[0], -1).astype(np.float64),
        np.ascontiguousarray(residual_sigma(monitor)).reshape(-1),
        lower,
        upper,
    )
    return state.derived


def build_monitor(cfg: MonitorConfig, forest: np.ndarray, monitoring_start: dt.date) -> Any:
    """Instantiate the configured monitor on a uint8 mask (1 = monitor)."""
    mask = forest.astype(np.uint8)
    common = {"mask": mask, "trend": cfg.trend, "harmonic_order": cfg.harmonic_order}
    match cfg:
        case IQRConfig():
            return IQR(**common, sensitivity=cfg.sensitivity, boundary=cfg.boundary)
        case CCDCConfig():
            return CCDC(**common, sensitivity=cfg.sensitivity, boundary=cfg.boundary)
        case EWMAConfig():
            threshold = np.inf if cfg.threshold_outlier is None else cfg.threshold_outlier
            return EWMA(**common, sensitivity=cfg.sensitivity, lambda_=cfg.lambda_, threshold_outlier=threshold)
        case CuSumConfig():
            return CuSum(**common, sensitivity=cfg.sensitivity)
        case MoSumConfig():
            return MoSum(**common, sensitivity=cfg.sensitivity, h=cfg.h)
        case CCDCNRTConfig():
            return CCDCNRT(
                mask,
                harmonic_order=cfg.harmonic_order,
                trend=cfg.trend,
                min_confidence=cfg.min_confidence,
                window=cfg.window,
                min_changes=cfg.min_changes,
                calibration_days=cfg.calibration_days,
                monitoring_days=cfg.monitoring_days,
                must_be_confirmed_in_monitoring=cfg.must_be_confirmed_in_monitoring,
                must_be_stable_before_change=cfg.must_be_stable_before_change,
                must_stay_changed=cfg.must_stay_changed,
                direction=cfg.direction,
                monitoring_start=monitoring_start,
            )
    raise TypeError(f"no monitor for {type(cfg).__name__}")


def _fit_kwargs(cfg: MonitorConfig, bands: dict[str, xr.DataArray]) -> dict[str, Any]:
    """Nrt fit arguments: method, screening (always explicit: EWMA and CCDC screen by default)."""
    kwargs: dict[str, Any] = {"method": cfg.fit_method, "screen_outliers": None}
    if cfg.screen_outliers == "Shewhart":
        kwargs.update(screen_outliers="Shewhart", L=getattr(cfg, "shewhart_l", 5.0))
    elif cfg.screen_outliers == "CCDC_RIRLS":
        # Reflectances are already scaled to 0..1 by the loader.
        kwargs.update(screen_outliers="CCDC_RIRLS", green=bands["green"], swir=bands["swir16"], scaling_factor=1)
    if cfg.fit_method == "ROC":
        kwargs["alpha"] = getattr(cfg, "alpha", 0.05)
    return kwargs


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
    monitor = build_monitor(cfg, forest, monitoring_start)
    shape = forest.shape
    extras = {name: np.zeros(shape, dtype=dtype) for name, dtype in EXTRA_LAYERS.items()}
    if not forest.any():
        _set_xy(monitor, history, shape)
        return MonitorState(monitor, extras, empty=True)
    try:
        with (
            warnings.catch_warnings(),
            np.errstate(divide="ignore", invalid="ignore"),
            numba_threads(threads) as usable,
        ):
            # nrt warns for every short series it masks; the log line after the fit gives the count.
            warnings.simplefilter("ignore")
            if isinstance(monitor, CCDCNRT):
                monitor.fit(history)
            elif isinstance(monitor, IQR):
                fit_iqr(monitor, history, {**_fit_kwargs(cfg, bands or {}), "n_threads": usable})
            else:
                # nrt sets numba's thread count from n_threads itself (default 1); numba_threads restores it.
                monitor.fit(history, **_fit_kwargs(cfg, bands or {}), n_threads=usable)
    except ValueError as exc:
        if "sufficient" not in str(exc):
            raise
        _set_xy(monitor, history, shape)
        monitor.mask[monitor.mask == NRT_MONITORED] = NRT_SHORT
        return MonitorState(monitor, extras, empty=True)
    if isinstance(monitor, BaseNrt):
        if not isinstance(monitor, MoSum) and monitor.process is None:
            monitor.process = np.zeros(shape, dtype=np.uint8)
        monitor.detection_date = np.zeros(shape, dtype=np.uint16)
    return MonitorState(monitor, extras)


def _set_xy(monitor: Any, history: xr.DataArray, shape: tuple[int, int]) -> None:
    """Give an unfitted monitor its coordinates and a mask, so its state can still be saved."""
    monitor.x, monitor.y = history.x.values, history.y.values
    if getattr(monitor, "mask", None) is None:
        monitor.mask = np.zeros(shape, dtype=np.uint8)


def residual_sigma(monitor: Any) -> np.ndarray:
    """Each pixel's residual spread, the unit of our confidence."""
    if isinstance(monitor, IQR):
        spread = (monitor.q75 - monitor.q25) / 1.349  # IQR / 1.349 estimates sigma for normal residuals
    elif isinstance(monitor, CCDC):
        spread = monitor.rmse
    else:
        spread = monitor.sigma
    return np.maximum(np.nan_to_num(np.asarray(spread, dtype=np.float32), nan=1.0), np.float32(1e-6))


def _anomaly_limits(monitor: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """IQR's fences (lower, upper), or (None, |residual| limit) for the sigma-based monitors; CCDC has neither."""
    with np.errstate(invalid="ignore"):
        if isinstance(monitor, IQR):
            iqr = monitor.q75 - monitor.q25
            return monitor.q25 - monitor.sensitivity * iqr, monitor.q75 + monitor.sensitivity * iqr
        if isinstance(monitor, CCDC):
            return None, None
        return None, ANOMALY_SIGMAS * residual_sigma(monitor)


def _outside(monitor: Any, residuals: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None) -> np.ndarray:
    """The anomaly test given the monitor's _anomaly_limits."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if isinstance(monitor, IQR):
            return (residuals < lower) | (residuals > upper)
        if isinstance(monitor, CCDC):
            return np.abs(residuals) / monitor.rmse > monitor.sensitivity
        return np.abs(residuals) > upper


def is_anomalous(monitor: Any, residuals: np.ndarray) -> np.ndarray:
    """Whether one observation is anomalous: the monitor's own outlier test where it has one."""
    return _outside(monitor, residuals, *_anomaly_limits(monitor))


def _naive(when: dt.datetime) -> dt.datetime:
    """Nrt subtracts datetime(1970, 1, 1): it needs a naive datetime.datetime (UTC)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


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


def _regressors(monitor: BaseNrt, naive: dt.datetime) -> np.ndarray:
    """monitor._regressors(naive): the same nrt call, made once per date, not once per row block and date."""
    if type(monitor)._regressors is not BaseNrt._regressors:
        return monitor._regressors(naive)
    return date_regressors(np.datetime64(naive, "ns"), bool(monitor.trend), int(monitor.harmonic_order))


def absorb(state: MonitorState, array: np.ndarray, when: dt.datetime) -> None:
    """Feed one acquisition (2-D index values, NaN = no observation) to the monitor and our bookkeeping."""
    if state.empty:
        return
    monitor = state.monitor
    array, finite = _observation(array)
    naive = _naive(when)
    if isinstance(monitor, CCDCNRT):
        monitor.monitor(array, naive)  # keeps its own dates, counts and confidences
        return
    derived = _derived(state)
    # nrt's predict, with the float64 coefficients cast once per state rather than once per acquisition.
    prediction = np.dot(_regressors(monitor, naive), derived.beta).reshape(array.shape)
    residuals = array - prediction
    valid = (monitor.mask == NRT_MONITORED) & finite
    outside = _outside(monitor, residuals, derived.lower, derived.upper)
    # nrt's monitor() predicts the same date again (a third of a 1000 x 1000 update's time): hand it ours.
    monitor.predict = lambda date: prediction
    if isinstance(monitor, IQR | CCDC):
        # Their process update repeats our outlier test (IQR recomputing its fences): give it our test's answer.
        monitor._update_process = lambda residuals, is_valid: _count_outliers(monitor, outside, is_valid)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            monitor.monitor(array=array, date=naive)
    finally:
        # Back to the class's methods; never saved with the state.
        vars(monitor).pop("predict", None)
        vars(monitor).pop("_update_process", None)
    anomalous = valid & outside
    _note_runs(state, derived, residuals.reshape(-1), valid, anomalous, days_since_epoch(naive))


def _count_outliers(monitor: IQR | CCDC, is_outlier: np.ndarray, is_valid: np.ndarray) -> None:
    """The process update of nrt's IQR and CCDC (consecutive outliers), given their outlier test's result."""
    if monitor.process is None:
        monitor.process = np.zeros_like(is_outlier, dtype=np.uint8)
    monitor.process = np.where(is_valid, monitor.process * is_outlier + is_outlier, monitor.process)


def _note_runs(
    state: MonitorState, derived: _Derived, residuals: np.ndarray, valid: np.ndarray, anomalous: np.ndarray, day: int
) -> None:
    """Our run bookkeeping after one acquisition (flat arrays; anomalies are few, so they are updated by index)."""
    extras = state.extras
    mask = np.asarray(state.monitor.mask)
    first, count, total, score = (_flat_extra(extras, name) for name in EXTRA_LAYERS)
    at = np.flatnonzero(anomalous)
    first[at[count[at] == 0]] = day
    count[at] += 1
    total[at] += residuals[at].astype(np.float32)
    score[at] += (np.abs(residuals[at]) / derived.sigma[at]).astype(np.float32)
    # A break confirmed without a run of single anomalies (CuSum/MoSum accumulate small residuals): date and
    # score come from the confirming observation.
    silent = np.flatnonzero((mask == NRT_BREAK).reshape(-1) & valid.reshape(-1) & (count == 0))
    first[silent] = day
    count[silent] = 1
    total[silent] = residuals[silent].astype(np.float32)
    score[silent] = (np.abs(residuals[silent]) / derived.sigma[silent]).astype(np.float32)
    # A clear, normal observation ends the run; clouds (invalid) do not.
    ended = (valid & ~anomalous & (mask == NRT_MONITORED)).reshape(-1)
    # Only where a layer holds any bit (-0.0 included): a masked write of every pixel of four layers costs 40x this.
    holding = (first != 0) | (count != 0) | (total.view(np.uint32) != 0) | (score.view(np.uint32) != 0)
    ended = np.flatnonzero(ended & holding)
    for values in (first, count, total, score):
        values[ended] = 0


def _codes(stage: np.ndarray, high: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Status codes from a stage (0 none, 1 first, 2 provisional, 3 confirmed, 4 finished) and confidence."""
    status = np.full(stage.shape, Status.NONE, dtype=np.uint8)
    for value, low_code, high_code in (
        (1, Status.FIRST_LOW, Status.FIRST_HIGH),
        (2, Status.PROVISIONAL_LOW, Status.PROVISIONAL_HIGH),
        (3, Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH),
        (4, Status.FINISHED_LOW, Status.FINISHED_HIGH),
    ):
        at = stage == value
        status[at] = np.where(high[at], high_code, low_code)
    status[mask == NRT_NOT_MONITORED] = Status.NOT_MONITORED
    status[mask == NRT_UNSTABLE] = Status.UNSTABLE_HISTORY
    status[mask == NRT_SHORT] = Status.INSUFFICIENT_HISTORY
    return status


def _layers(
    status: np.ndarray, date: np.ndarray, confirmed: np.ndarray, magnitude: np.ndarray, confidence: np.ndarray
) -> dict:
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


def report_layers(state: MonitorState, cfg: MonitorConfig) -> dict[str, Any]:
    """The published layers: status codes, first-detection date, mean magnitude and confidence (+ series data)."""
    layers = _alert_layers(state, cfg)
    record = _series_record(state)
    layers[SERIES_KEY] = SeriesExport(record.get("chunks", []), export_model(state), record.get("monitoring_start"))
    return layers


def _alert_layers(state: MonitorState, cfg: MonitorConfig) -> dict[str, Any]:
    """The alert layers of report_layers."""
    monitor = state.monitor
    mask = np.asarray(monitor.mask)
    if isinstance(monitor, CCDCNRT):
        layers = monitor.layers()
        stage = np.zeros(mask.shape, np.uint8) if state.empty else monitor.alert_stage()
        confidence = layers["confidence"]
        high = np.nan_to_num(confidence, nan=0.0) >= cfg.high_confidence
        # SEPAL's difference is expected - observed; ours is observed - expected (a loss is negative).
        return _layers(
            _codes(stage, high, mask),
            layers["first_detection_date"],
            layers["confirmation_date"],
            -layers["difference"],
            confidence,
        )
    extras = state.extras
    count = extras["run_count"].astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        magnitude = np.where(count > 0, extras["run_sum"] / count, np.nan).astype(np.float32)
        confidence = np.where(count > 0, extras["run_score"] / count, np.nan).astype(np.float32)
    high = np.nan_to_num(confidence, nan=0.0) >= cfg.high_confidence
    stage = np.zeros(mask.shape, dtype=np.uint8)
    monitored = mask == NRT_MONITORED
    if isinstance(monitor, IQR | CCDC):
        # Counting monitors: the process is the number of consecutive outliers; `boundary` confirms.
        process = np.asarray(monitor.process)
        provisional_at = max(2, monitor.boundary - 1)
        stage[monitored & (process >= 1)] = 1
        stage[monitored & (process >= provisional_at)] = 2
    else:
        stage[monitored & (extras["run_count"] == 1)] = 1
        stage[monitored & (extras["run_count"] >= 2)] = 2
    stage[mask == NRT_BREAK] = 3
    confirmed = np.zeros(mask.shape, np.uint16) if state.empty else np.asarray(monitor.detection_date)
    return _layers(_codes(stage, high, mask), extras["first_date"], confirmed, magnitude, confidence)


# ---- series data for the click panel's plot (catalog/series.py publishes it) -------------------------------------

# The chunk names a state has published (oldest first) and its monitoring start: JSON kept as a monitor attribute,
# so it is saved in the state file (monitor scalars) and commits together with the acquisitions it describes.
SERIES_ATTR = "nrt_alerts_series"


def _series_record(state: MonitorState) -> dict[str, Any]:
    """The state's series record: {"chunks": [...], "monitoring_start": "YYYY-MM-DD"}."""
    return json.loads(getattr(state.monitor, SERIES_ATTR, None) or "{}")


def series_chunks(state: MonitorState) -> list[str]:
    """Names of the series chunks holding every acquisition the state absorbed (history first)."""
    return list(_series_record(state).get("chunks", []))


def series_data_key(cfg: Config) -> str:
    """What the published index values depend on (index and how the imagery is read), hashed into chunk names."""
    source = cfg.source.model_dump(
        mode="json", include={"collection", "bands", "mask_band", "mask_valid", "scale", "offset", "nodata"}
    )
    text = json.dumps({"index": cfg.index.name, "source": source}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def series_writer(tile: Any, keys: Sequence[str], cfg: Config) -> ChunkWriter:
    """A writer for the chunk of the acquisitions `keys` over the whole tile (fed block by block by a fit)."""
    return ChunkWriter(
        CatalogLayout(cfg.output.stac_dir).collection_dir,
        tile.id,
        keys,
        width=tile.width,
        height=tile.height,
        crs=tile.crs,
        transform=tile.transform,
        data_key=series_data_key(cfg),
        index=cfg.index.name,
    )


def note_series(state: MonitorState, name: str, cfg: Config) -> None:
    """Note a published chunk in the state: a fitted state (no chunks yet) starts the list, an update appends."""
    chunks = [c for c in series_chunks(state) if c != name]
    start = (cfg.history.end + dt.timedelta(days=1)).isoformat()
    setattr(state.monitor, SERIES_ATTR, json.dumps({"chunks": [*chunks, name], "monitoring_start": start}))


def record_series(state: MonitorState, tile: Any, data: xr.DataArray, keys: Sequence[str], cfg: Config) -> None:
    """Publish the index values of the absorbed acquisitions `keys` as one chunk and note it in the state.

    Call before the state is saved: a crash in between leaves an unreferenced chunk that the re-run reuses.
    """
    if not keys:
        return
    wanted = set(keys)
    positions = [i for i, time in enumerate(data.time.values) if acquisition_key(time) in wanted]
    values = data.values if len(positions) == data.sizes["time"] else data.isel(time=positions).values
    writer = series_writer(tile, [acquisition_key(data.time.values[i]) for i in positions], cfg)
    writer.write(0, values)
    note_series(state, writer.close(), cfg)


def _band_offsets(monitor: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """The threshold band around the prediction each monitor uses, as (lower, upper) offsets and a description."""
    with np.errstate(invalid="ignore"):
        if isinstance(monitor, IQR):
            iqr = monitor.q75 - monitor.q25
            return (
                monitor.q25 - monitor.sensitivity * iqr,
                monitor.q75 + monitor.sensitivity * iqr,
                f"IQR fences of the history residuals: q25 - {monitor.sensitivity:g} IQR .. q75 + "
                f"{monitor.sensitivity:g} IQR; {monitor.boundary} consecutive outliers confirm",
            )
        if isinstance(monitor, CCDC):
            half = monitor.sensitivity * np.asarray(monitor.rmse)
            return -half, half, f"+/- {monitor.sensitivity:g} x RMSE; {monitor.boundary} consecutive outliers confirm"
        if isinstance(monitor, CCDCNRT):
            half = monitor.min_confidence * np.maximum(np.asarray(monitor.rmse, np.float64), RMSE_FLOOR)
            return (
                -half,
                half,
                (
                    f"+/- {monitor.min_confidence:g} x RMSE around the model one year earlier; "
                    f"{monitor.min_changes} changes in {monitor.window} observations confirm"
                ),
            )
        if isinstance(monitor, EWMA):
            half = np.asarray(monitor.boundary)
            return (
                -half,
                half,
                (
                    f"EWMA control limits +/- {monitor.sensitivity:g} sigma sqrt(lambda / (2 - lambda)), lambda "
                    f"{monitor.lambda_:g}: they bound the exponentially weighted mean of the residuals, not single "
                    "observations"
                ),
            )
        half = ANOMALY_SIGMAS * np.asarray(monitor.sigma)
        return (
            -half,
            half,
            (
                f"approximation: +/- {ANOMALY_SIGMAS:g} sigma (our first-detection test). {type(monitor).__name__}'s "
                "real boundary is on the cumulative sum of scaled residuals (sensitivity is its significance level), "
                "so a break can be confirmed inside this band or not yet outside it"
            ),
        )


def export_model(state: MonitorState) -> ModelExport | None:
    """The fitted model per pixel and its threshold band, for the series plot; None when nothing was fitted."""
    monitor = state.monitor
    beta = getattr(monitor, "beta", None)
    if state.empty or beta is None:
        return None
    ccdcnrt = isinstance(monitor, CCDCNRT)
    lower, upper, band = _band_offsets(monitor)
    form = ModelForm(
        monitor=type(monitor).__name__,
        trend=bool(monitor.trend),
        harmonic_order=int(monitor.harmonic_order),
        convention="ccdcnrt" if ccdcnrt else "nrt",
        lag_years=1.0 if ccdcnrt else 0.0,
        band=band,
    )
    # Pixels with a fitted model: monitored, unstable history, or confirmed break (not: unmonitored, too short).
    fitted = np.isin(np.asarray(monitor.mask), (NRT_MONITORED, NRT_UNSTABLE, NRT_BREAK))
    coefficients = np.where(fitted, np.asarray(beta, np.float32), np.nan).astype(np.float32)
    return ModelExport(
        form,
        coefficients,
        np.where(fitted, lower, np.nan).astype(np.float32),
        np.where(fitted, upper, np.nan).astype(np.float32),
    )
