"""Every monitor x every demo scenario: fit, fast-forward, evaluate, and write docs/accuracy.md."""

from __future__ import annotations

import datetime as dt
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from catalog import atomic
from scheduler.config import load_config, parse_monitor
from scheduler.demo import SCENARIOS, DemoSpec, generate_demo
from scheduler.demo_setup import write_demo_config
from scheduler.evaluation.evaluate import evaluate
from scheduler.evaluation.report import fmt
from scheduler.evaluation.suite import splice_suite, suite_section
from scheduler.pipeline import Pipeline

log = logging.getLogger(__name__)

# The monitors compared, by the name the report uses. Two rows show nrt's defaults that we changed, and why.
MONITORS: dict[str, dict] = {
    "iqr (nrt default, sensitivity 1.5)": {"algorithm": "iqr", "sensitivity": 1.5},
    "iqr, sensitivity 2.5": {"algorithm": "iqr", "sensitivity": 2.5},
    "ccdc": {"algorithm": "ccdc"},
    "ewma": {"algorithm": "ewma"},
    "ewma, nrt's threshold_outlier 10": {"algorithm": "ewma", "threshold_outlier": 10},
    "cusum": {"algorithm": "cusum"},
    "mosum": {"algorithm": "mosum"},
    "ccdc-nrt": {"algorithm": "ccdc-nrt"},
    "ccdc-nrt, losses only": {"algorithm": "ccdc-nrt", "direction": "decrease"},
}
# The targets issue 3 sets on the clear-cut scenario.
TARGET = {"pa": 0.95, "ua": 0.95, "lag_obs": 3}
WIDTH, HEIGHT, TILE = 256, 128, 128


@dataclass
class Cell:
    """One monitor on one scenario."""

    scenario: str
    monitor: str
    pa: float | None = None
    ua: float | None = None
    f1: float | None = None
    disturbed: int = 0
    false_alarm_rate: float | None = None
    known_undisturbed_pixels: int = 0
    known_undisturbed_false_alarms: int = 0
    lag_days: float | None = None
    lag_obs_confirmed: float | None = None
    lag_days_confirmed: float | None = None
    error: str | None = None


def _run_cell(work: Path, scenario: str, monitor_name: str) -> Cell:
    """Fit, update to the archive's end and evaluate one monitor on one scenario (in its own folder)."""
    cell = Cell(scenario, monitor_name)
    archive = generate_demo(work / "archives" / scenario, DemoSpec(width=WIDTH, height=HEIGHT, scenario=scenario))
    root = work / "runs" / scenario / monitor_name.replace(" ", "_").replace(",", "").replace("'", "")
    root.mkdir(parents=True, exist_ok=True)
    link = root / "archive"
    if not link.exists():
        link.symlink_to(archive.root, target_is_directory=True)
    base = load_config(write_demo_config(root, archive.spec, tile_size=TILE))
    cfg = base.model_copy(update={"monitor": parse_monitor(MONITORS[monitor_name])})
    try:
        pipeline = Pipeline(cfg)
        for result in (
            pipeline.run_fit(),
            pipeline.run_update(dt.datetime.combine(archive.spec.end, dt.time.max, tzinfo=dt.UTC)),
        ):
            if result.failed:
                raise RuntimeError(result.failed[0].error)
        evaluation = evaluate(cfg, archive.ground_truth_path, pipeline=pipeline)
    except Exception as exc:  # a cell that fails is reported in the table, the others go on
        cell.error = str(exc).splitlines()[0]
        log.error("%s on %s failed: %s", monitor_name, scenario, cell.error)
        return cell
    m = evaluation.metrics
    cell.pa, cell.ua, cell.f1 = m.producers_accuracy, m.users_accuracy, m.f1
    cell.disturbed = m.counts.disturbed
    cell.false_alarm_rate = m.false_alarm_rate
    cell.known_undisturbed_pixels = evaluation.known_undisturbed["pixels"]
    cell.known_undisturbed_false_alarms = evaluation.known_undisturbed["false_alarms"]
    cell.lag_days = m.lag_days.median
    if m.confirmation_lag_observations:
        cell.lag_obs_confirmed = m.confirmation_lag_observations.median
        cell.lag_days_confirmed = m.confirmation_lag_days.median
    log.info("%s on %s: F1 %s", monitor_name, scenario, fmt(cell.f1))
    return cell


def run_matrix(work: Path, workers: int = 2) -> list[Cell]:
    """Every monitor on every scenario, `workers` processes at a time."""
    for scenario in SCENARIOS:  # generate archives once, before the workers race for them
        generate_demo(work / "archives" / scenario, DemoSpec(width=WIDTH, height=HEIGHT, scenario=scenario))
    jobs = [(scenario, monitor) for scenario in SCENARIOS for monitor in MONITORS]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_cell, [work] * len(jobs), *zip(*jobs, strict=True)))


def _best(cells: list[Cell], scenario: str) -> Cell | None:
    scored = [c for c in cells if c.scenario == scenario and c.f1 is not None]
    return max(scored, key=lambda c: (c.f1, -(c.lag_obs_confirmed or 99))) if scored else None


def render(cells: list[Cell], *, generated: str) -> str:
    """docs/accuracy.md."""
    present = [s for s in SCENARIOS if any(c.scenario == s for c in cells)]
    disturbance = [s for s in present if any(c.scenario == s and c.disturbed for c in cells)]
    lookalike = [s for s in present if s not in disturbance]
    lines = [
        "# Own demo, every monitor on every scenario (tuned on)",
        "",
        "The project's defaults were chosen on these archives: read the hard suite above for what to expect elsewhere.",
        "",
        f"Generated by `nrt-alerts accuracy` on {generated} (do not edit by hand). Each scenario is a "
        f"{WIDTH} x {HEIGHT} px demo archive (20 m, 2021-01 to 2024-06, 5-day revisit, clouds, a forest "
        "mask); each monitor is fitted on 2021-2022 and fed every acquisition to the archive's end; the latest "
        "publication is evaluated against the scenario's ground truth (`nrt-alerts evaluate`, pixel based, "
        "confirmed alerts only).",
        "",
        "PA = producer's accuracy (recall), UA = user's accuracy (precision). Lags are medians over true "
        "positives: days from the event to the first anomalous observation, and valid (clear) observations "
        "from the event to the confirmation of the alert.",
        "",
        "## Disturbance scenarios",
        "",
    ]
    for scenario in disturbance:
        lines += [
            f"### {scenario}",
            "",
            "| monitor | PA | UA | F1 | lag to first detection (days) | "
            "lag to confirmation (days) | lag to confirmation (valid obs) |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in (c for c in cells if c.scenario == scenario):
            if c.error:
                lines.append(f"| {c.monitor} | failed: {c.error} | | | | | |")
                continue
            lines.append(
                f"| {c.monitor} | {fmt(c.pa)} | {fmt(c.ua)} | {fmt(c.f1)} | {fmt(c.lag_days, 1)} | "
                f"{fmt(c.lag_days_confirmed, 1)} | {fmt(c.lag_obs_confirmed, 1)} |"
            )
        best = _best(cells, scenario)
        if best:
            lines += ["", f"Best on {scenario}: **{best.monitor}** (F1 {fmt(best.f1)})."]
        lines.append("")
    lines += [
        "## Look-alikes that are not disturbances",
        "",
        "No pixel here is disturbed: every alert is a false alarm. 'In the look-alike' counts alerts inside the "
        "areas the scenario changed (drought, haze, non-forest change).",
        "",
        "| monitor | " + " | ".join(f"{s}: false-alarm rate / in the look-alike" for s in lookalike) + " |",
        "|---|" + "---|" * len(lookalike),
    ]
    for monitor in MONITORS:
        row = []
        for scenario in lookalike:
            c = next((c for c in cells if c.scenario == scenario and c.monitor == monitor), None)
            if c is None:
                row.append("not run")
                continue
            row.append(
                f"failed: {c.error}"
                if c.error
                else f"{fmt(c.false_alarm_rate, 4)} / {c.known_undisturbed_false_alarms} of "
                f"{c.known_undisturbed_pixels} px"
            )
        lines.append(f"| {monitor} | " + " | ".join(row) + " |")
    lines += ["", "## Target on clear-cuts", ""]
    clear = [c for c in cells if c.scenario == "clear-cut" and c.f1 is not None]
    meeting = [
        c
        for c in clear
        if (c.pa or 0) >= TARGET["pa"]
        and (c.ua or 0) >= TARGET["ua"]
        and c.lag_obs_confirmed is not None
        and c.lag_obs_confirmed <= TARGET["lag_obs"]
    ]
    if meeting:
        lines.append(
            f"PA >= {TARGET['pa']}, UA >= {TARGET['ua']} and a median lag to confirmation of at most "
            f"{TARGET['lag_obs']} valid observations: met by " + ", ".join(f"**{c.monitor}**" for c in meeting) + "."
        )
    else:
        lines.append("No configuration meets PA >= 0.95, UA >= 0.95 and a median lag <= 3 valid observations.")
    lines += ["", WHY, ""]
    return "\n".join(lines)


# Why the table looks the way it does: mechanisms, written once and kept with the generator.
WHY = """## Why

- **Counting monitors confirm after `boundary` anomalous observations** (IQR, CCDC: 3 by default), so their
  lag to confirmation is about 3 valid observations: the 3-observation target is their floor, not a tuning
  accident. CCDC-NRT's 3-of-3 windows behave the same way.
- **IQR's fences are relative to each pixel's residual spread.** Stable forest residuals are small (NDVI sigma
  about 0.015), so nrt's default sensitivity 1.5 flags drifts of about 0.04 NDVI: three in a row happen often
  enough to confirm false alerts. 2.5 keeps every clear-cut (a drop of about 0.5 NDVI is 30 sigma) and drops
  those false alarms.
- **EWMA with nrt's `threshold_outlier = 10`** discards every residual beyond 10 sigma before it reaches the
  process: a clear-cut or a fire is exactly such a residual, so that row detects none of them. We ship it
  disabled, which lets disturbances through but also single observations the cloud mask missed: one such
  residual moves the EWMA past its limit, hence EWMA's low UA on this demo (whose mask leaks some haze). It
  confirms fastest (about 1 valid observation); use it where the cloud mask is reliable.
- **CuSum and MoSum** test the cumulative sum of residuals against a boundary that tightens with time; small
  persistent model drifts (phenology that does not repeat exactly, the drought year) accumulate into false
  breaks, hence their low UA everywhere. They suit slow, long changes better than near-real-time alerts.
- **Persistent haze that the scene classification calls clear** looks like a drop for weeks: every monitor
  that confirms after three anomalous observations alerts on it. CCDC-NRT withdraws most of those alerts once
  the pixel is stable again (`must_stay_changed`), and its confidence (|difference| / RMSE > 5) ignores the
  shallow drought dip, hence by far the fewest false alarms on both look-alikes. A better cloud mask is the real
  cure for haze.
- **Gradual degradation** is hard for all: each observation deviates little from the model, so alerts come
  only once the cumulated loss exceeds the threshold, months after the decline starts. CCDC (RMSE-scaled, no
  stable-window requirement) is best there; CCDC-NRT waits for a stable window and a change that stays, so it
  misses late, partial declines.
- **Outside the forest mask nothing is monitored**, so the non-forest changes raise no alert (0 of 0 pixels
  evaluated there); that column's rates are false alarms on the stable forest around them.
- **Overall**: CCDC-NRT is the most precise on abrupt losses and the look-alikes; IQR with sensitivity 2.5 and
  CCDC are close on abrupt losses and better on degradation. We ship IQR with sensitivity 2.5 as the default
  monitor (fast, simple, per-pixel thresholds) and recommend CCDC-NRT where haze or droughts are common.
"""


def write_accuracy_doc(out: Path, work: Path, workers: int = 2) -> list[Cell]:
    """Run the matrix and write the Markdown report and its JSON beside it."""
    cells = run_matrix(work, workers)
    generated = dt.date.today().isoformat()
    # The hard suite's section (bench/accuracy_suite.py) stays first.
    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    text = splice_suite(render(cells, generated=generated), suite_section(previous))
    atomic.write_bytes(out, text.encode("utf-8"))
    atomic.write_json(out.with_suffix(".json"), {"generated": generated, "cells": [asdict(c) for c in cells]})
    return cells


def load_cells(path: Path) -> list[Cell]:
    """Cells of a previous run (to re-render without recomputing)."""
    return [Cell(**c) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
