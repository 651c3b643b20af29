"""Pixel-based accuracy of alerts against a reference: confusion counts, accuracies, detection lags.

Definitions (per evaluated pixel; a pixel is a reference positive when it has a disturbance date):

- alert: the published status is confirmed (3 confirmed-low, 6 confirmed-high, and 7/8 confirmed earlier and
  finished), plus provisional (2, 5) when asked for. First detections (1, 4) never count.
- true positive (hit): an alert on a positive whose detection date >= reference date - tolerance_days.
- early detection: an alert on a positive detected before that. It cannot be this event (it predates it) and
  the monitor stops watching a pixel once it confirms a break, so it counts as a false positive (a false
  alarm) AND a false negative (the event is missed).
- false positive: an alert that is not a hit (on an undisturbed pixel, or early); false negative: a positive
  that is not a hit; true negative: an undisturbed pixel without an alert.
- producer's accuracy (recall) PA = TP / positives; user's accuracy (precision) UA = TP / alerts;
  F1 = 2 TP / (positives + alerts), the harmonic mean of PA and UA; omission = 1 - PA; commission = 1 - UA;
  false-alarm rate = alerts on undisturbed pixels / undisturbed pixels. Undefined ratios (0 / 0) are None.
- lag in days = detection date - reference date, over hits. Lag in valid observations = the clear observations
  of the index strictly after the reference date up to and including the detection date.
- accuracy vs lag (as nrt-validate): a hit counts only when its lag <= L, a later one is a miss and a false
  alarm; the initial delay is the smallest L where PA exceeds 2 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from catalog.encoding import Status

CONFIRMED_STATUS = (Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH, Status.FINISHED_LOW, Status.FINISHED_HIGH)
PROVISIONAL_STATUS = (Status.PROVISIONAL_LOW, Status.PROVISIONAL_HIGH)
INITIAL_DELAY_PA = 0.02  # nrt-validate's threshold: the lag where PA first exceeds 2 %
MAX_OBSERVATION_LAG = 10


def alert_codes(include_provisional: bool = False) -> tuple[int, ...]:
    """Status codes that count as an alert."""
    codes = CONFIRMED_STATUS + (PROVISIONAL_STATUS if include_provisional else ())
    return tuple(sorted(int(c) for c in codes))


@dataclass(frozen=True)
class Outcome:
    """Per evaluated pixel: the reference, the alert and how they match."""

    reference_day: np.ndarray  # days since 1970-01-01, 0 = undisturbed
    detection_day: np.ndarray  # days since 1970-01-01, 0 = none
    positive: np.ndarray
    alert: np.ndarray
    hit: np.ndarray
    early: np.ndarray

    @property
    def lag_days(self) -> np.ndarray:
        """Detection date - reference date of each hit, in the order of the hits."""
        return (self.detection_day[self.hit] - self.reference_day[self.hit]).astype(np.int64)


def classify(
    reference_day: np.ndarray,
    status: np.ndarray,
    detection_day: np.ndarray,
    *,
    include_provisional: bool = False,
    tolerance_days: int = 0,
) -> Outcome:
    """Match 1-D arrays of evaluated pixels: reference day (0 = undisturbed), published status and date."""
    reference_day = np.asarray(reference_day, dtype=np.int64)
    detection_day = np.asarray(detection_day, dtype=np.int64)
    positive = reference_day > 0
    alert = np.isin(np.asarray(status), alert_codes(include_provisional))
    on_time = detection_day >= reference_day - tolerance_days
    return Outcome(
        reference_day=reference_day,
        detection_day=detection_day,
        positive=positive,
        alert=alert,
        hit=positive & alert & on_time,
        early=positive & alert & ~on_time,
    )


@dataclass(frozen=True)
class Counts:
    """Confusion counts in pixels; an early detection is both a false positive and a false negative."""

    evaluated: int
    disturbed: int
    undisturbed: int
    alerts: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    early_detections: int
    false_alarms_on_undisturbed: int


@dataclass(frozen=True)
class LagStats:
    """Summary of lags over the hits (None without hits)."""

    n: int
    median: float | None
    mean: float | None
    p90: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class CurvePoint:
    """Accuracy when only detections within `lag` count."""

    lag: int
    producers_accuracy: float | None
    users_accuracy: float | None
    f1: float | None


@dataclass(frozen=True)
class Metrics:
    """Everything computed from one outcome."""

    counts: Counts
    producers_accuracy: float | None
    users_accuracy: float | None
    f1: float | None
    omission_error: float | None
    commission_error: float | None
    false_alarm_rate: float | None
    lag_days: LagStats
    lag_observations: LagStats | None
    accuracy_vs_lag_days: list[CurvePoint]
    accuracy_vs_lag_observations: list[CurvePoint] | None
    initial_delay_days: int | None
    initial_delay_observations: int | None
    # Lag from the reference date to the alert's confirmation (the first-detection lag is above).
    confirmation_lag_days: LagStats | None = None
    confirmation_lag_observations: LagStats | None = None

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def ratio(numerator: int, denominator: int) -> float | None:
    """The ratio of two counts; None when the denominator is 0."""
    return numerator / denominator if denominator else None


def complement(value: float | None) -> float | None:
    """1 - value, keeping None."""
    return None if value is None else 1.0 - value


def lag_stats(lags: np.ndarray) -> LagStats:
    """n, median, mean, 90th percentile (linear interpolation), min and max of lags."""
    if lags.size == 0:
        return LagStats(0, None, None, None, None, None)
    values = lags.astype(float)
    return LagStats(
        n=int(values.size),
        median=float(np.median(values)),
        mean=float(values.mean()),
        p90=float(np.percentile(values, 90)),
        min=float(values.min()),
        max=float(values.max()),
    )


def accuracy_curve(lags: np.ndarray, positives: int, alerts: int, max_lag: int) -> list[CurvePoint]:
    """PA, UA and F1 for L = 0..max_lag when only hits with lag <= L count (the others are misses)."""
    points = []
    for lag in range(max_lag + 1):
        hits = int((lags <= lag).sum())
        points.append(CurvePoint(lag, ratio(hits, positives), ratio(hits, alerts), ratio(2 * hits, positives + alerts)))
    return points


def initial_delay(curve: list[CurvePoint]) -> int | None:
    """The smallest lag where PA exceeds 2 % (nrt-validate's initial delay), None if it never does."""
    for point in curve:
        if point.producers_accuracy is not None and point.producers_accuracy > INITIAL_DELAY_PA:
            return point.lag
    return None


def compute_metrics(
    outcome: Outcome, observation_lags: np.ndarray | None = None, *, max_observations: int = MAX_OBSERVATION_LAG
) -> Metrics:
    """Counts, accuracies and lags; observation_lags (one per hit, in hit order) adds the observation lags."""
    disturbed = int(outcome.positive.sum())
    alerts = int(outcome.alert.sum())
    tp = int(outcome.hit.sum())
    undisturbed = int((~outcome.positive).sum())
    false_alarms = int((outcome.alert & ~outcome.positive).sum())
    counts = Counts(
        evaluated=int(outcome.positive.size),
        disturbed=disturbed,
        undisturbed=undisturbed,
        alerts=alerts,
        true_positives=tp,
        false_positives=alerts - tp,
        false_negatives=disturbed - tp,
        true_negatives=undisturbed - false_alarms,
        early_detections=int(outcome.early.sum()),
        false_alarms_on_undisturbed=false_alarms,
    )
    pa, ua = ratio(tp, disturbed), ratio(tp, alerts)
    lags = outcome.lag_days
    day_curve = accuracy_curve(lags, disturbed, alerts, max(0, int(lags.max())) if lags.size else 0)
    obs_stats, obs_curve = None, None
    if observation_lags is not None:
        observation_lags = np.asarray(observation_lags, dtype=np.int64)
        if observation_lags.shape != lags.shape:
            raise ValueError(f"{observation_lags.size} observation lags given for {lags.size} hits")
        obs_stats = lag_stats(observation_lags)
        obs_curve = accuracy_curve(observation_lags, disturbed, alerts, max_observations)
    return Metrics(
        counts=counts,
        producers_accuracy=pa,
        users_accuracy=ua,
        f1=ratio(2 * tp, disturbed + alerts),
        omission_error=complement(pa),
        commission_error=complement(ua),
        false_alarm_rate=ratio(false_alarms, undisturbed),
        lag_days=lag_stats(lags),
        lag_observations=obs_stats,
        accuracy_vs_lag_days=day_curve,
        accuracy_vs_lag_observations=obs_curve,
        initial_delay_days=initial_delay(day_curve),
        initial_delay_observations=initial_delay(obs_curve) if obs_curve else None,
    )
