"""Evaluate one published version of the alerts against a reference.

Evaluated pixels: those the reference labels (see scheduler.evaluation.reference) that are also monitored in
the publication, i.e. whose status is neither 250 (not monitored: outside the forest mask, when the config has
one) nor 255 (nodata). Pixels with an unstable or too short history (251, 252) are inside the mask and stay
evaluated: a disturbance there is missed. A reference disturbance dated on or before the last history day is
no new break the monitor could report and is left out; one dated after the publication's data time has not
happened yet in that version, so the pixel counts as undisturbed (an alert there is a false alarm).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.encoding import Status, days_since_epoch
from catalog.mosaic import AreaGrid
from scheduler.config import Config
from scheduler.evaluation.errors import EvaluationError
from scheduler.evaluation.metrics import Metrics, alert_codes, classify, compute_metrics, lag_stats
from scheduler.evaluation.observations import observation_lags
from scheduler.evaluation.published import read_published
from scheduler.evaluation.reference import load_reference
from scheduler.pipeline import Pipeline, area_grid

log = logging.getLogger(__name__)

UNEVALUATED_STATUS = (int(Status.NOT_MONITORED), int(Status.NODATA))


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one publication."""

    version: str
    data_time: dt.datetime
    reference: dict[str, Any]
    settings: dict[str, Any]
    config: dict[str, Any]
    scope: dict[str, int]  # pixels left out, or relabelled, and why
    known_undisturbed: dict[str, int]
    metrics: Metrics

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "publication": {"version": self.version, "datetime": self.data_time.isoformat()},
            "reference": self.reference,
            "settings": self.settings,
            "config": self.config,
            "scope": self.scope,
            "known_undisturbed": self.known_undisturbed,
            **self.metrics.to_dict(),
        }


def config_summary(cfg: Config) -> dict[str, Any]:
    """The settings that shape the alerts, for the report."""
    return {
        "area": cfg.area.model_dump(mode="json"),
        "source": {"kind": cfg.source.kind, "collection": cfg.source.collection},
        "index": cfg.index.name,
        "forest_mask": str(cfg.forest_mask.path) if cfg.forest_mask.path else None,
        "monitor": cfg.monitor.model_dump(mode="json"),
        "history": cfg.history.model_dump(mode="json"),
        "output_dir": str(cfg.output.dir),
    }


def _check_grid(published: AreaGrid, configured: AreaGrid, version: str) -> None:
    """The publication must be on the config's area grid, else the config is not the one that produced it."""
    same = (
        published.crs == configured.crs
        and published.transform.almost_equals(configured.transform)
        and (published.width, published.height) == (configured.width, configured.height)
    )
    if not same:
        raise EvaluationError(
            f"publication {version} is not on the config's area grid; is -c the config that produced it?"
        )


def evaluate(
    cfg: Config,
    reference_path: Path | str,
    *,
    version: str | None = None,
    include_provisional: bool = False,
    tolerance_days: int = 0,
    pipeline: Pipeline | None = None,
    disturbance_property: str | None = None,
) -> Evaluation:
    """Evaluate the published alerts (latest version by default) against a reference file.

    disturbance_property: the GeoJSON property holding the disturbance flag (see load_reference).
    """
    if tolerance_days < 0:
        raise EvaluationError(f"--tolerance-days must be >= 0, not {tolerance_days}")
    published = read_published(cfg.output.stac_dir, version)
    _check_grid(published.grid, area_grid(cfg), published.version)
    reference = load_reference(reference_path, published.grid, disturbance_property=disturbance_property)
    first_day = days_since_epoch(cfg.history.end) + 1
    last_day = days_since_epoch(published.datetime)
    monitored = ~np.isin(published.status, UNEVALUATED_STATUS)
    disturbed = reference.labelled & (reference.day > 0)
    # As of the publication's data time a later disturbance has not happened yet: the pixel is undisturbed.
    later = disturbed & (reference.day > last_day)
    reference_day = np.where(later, 0, reference.day)
    # One before the monitoring period is not a new break the monitor could report: left out.
    earlier = disturbed & (reference.day < first_day)
    evaluated = reference.labelled & monitored & ~earlier
    rows, cols = np.nonzero(evaluated)
    outcome = classify(
        reference_day[rows, cols],
        published.status[rows, cols],
        published.date[rows, cols],
        include_provisional=include_provisional,
        tolerance_days=tolerance_days,
    )
    pipeline = pipeline or Pipeline(cfg)
    hits = outcome.hit
    obs_lags = observation_lags(
        pipeline, rows[hits], cols[hits], outcome.reference_day[hits], outcome.detection_day[hits]
    )
    metrics = compute_metrics(outcome, obs_lags)
    if published.confirmed is not None:
        confirmed_day = published.confirmed[rows, cols][hits].astype(np.int64)
        reference_hit = outcome.reference_day[hits].astype(np.int64)
        metrics = replace(
            metrics,
            confirmation_lag_days=lag_stats(confirmed_day - reference_hit),
            confirmation_lag_observations=lag_stats(
                observation_lags(pipeline, rows[hits], cols[hits], reference_hit, confirmed_day)
            ),
        )
    alerts = np.isin(published.status, alert_codes(include_provisional))
    scope = {
        "left_out_not_monitored": int((reference.labelled & ~monitored).sum()),
        "left_out_disturbed_not_monitored": int((disturbed & ~monitored).sum()),
        "left_out_disturbed_before_monitoring": int((earlier & monitored).sum()),
        "disturbed_after_data_counted_undisturbed": int((later & monitored).sum()),
    }
    settings = {
        "include_provisional": include_provisional,
        "tolerance_days": tolerance_days,
        "alert_codes": list(alert_codes(include_provisional)),
        "monitoring_period": {"start": cfg.history.end.isoformat(), "end": published.datetime.date().isoformat()},
    }
    known = reference.known_undisturbed & evaluated
    # Areas a user marked undisturbed (drought, thinning) are where false alarms are expected: count them apart.
    known_undisturbed = {"pixels": int(known.sum()), "false_alarms": int((alerts & known).sum())}
    return Evaluation(
        version=published.version,
        data_time=published.datetime,
        reference=reference.describe(),
        settings=settings,
        config=config_summary(cfg),
        scope=scope,
        known_undisturbed=known_undisturbed,
        metrics=metrics,
    )


def summary_line(evaluation: Evaluation) -> str:
    """One line: PA, UA, F1 and the median lags."""
    m = evaluation.metrics

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lag = "n/a" if m.lag_days.median is None else f"{m.lag_days.median:g} days"
    obs = m.lag_observations.median if m.lag_observations else None
    lag_obs = "" if obs is None else f" ({obs:g} valid obs)"
    confirm = m.confirmation_lag_observations
    if confirm is not None and confirm.median is not None:
        lag_obs += f", confirmed after {m.confirmation_lag_days.median:g} days ({confirm.median:g} valid obs)"
    return (
        f"evaluation of {evaluation.version} against {Path(evaluation.reference['path']).name}: "
        f"PA {pct(m.producers_accuracy)}, UA {pct(m.users_accuracy)}, F1 {pct(m.f1)}, "
        f"median lag {lag}{lag_obs} ({m.counts.true_positives} of {m.counts.disturbed} disturbed pixels detected, "
        f"{m.counts.false_positives} false alarm(s))"
    )
