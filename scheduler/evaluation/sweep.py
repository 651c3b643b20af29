"""Run the pipeline once per monitor parameter set of a GRID.toml, evaluate each, and rank them by F1.

GRID.toml:

    [base]                      # optional: monitor keys every run starts from
    monitor = { algorithm = "iqr", boundary = 3 }

    [[run]]
    name = "iqr-1.5"            # letters, digits, '.', '_' or '-': it names the run's output folder
    monitor = { algorithm = "iqr", sensitivity = 1.5 }

Each run's monitor is [base].monitor updated with the run's monitor table, validated by
scheduler.config.parse_monitor; keys not given take parse_monitor's defaults, not the config's [monitor].
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from catalog import atomic
from scheduler.config import Config, MonitorConfig, parse_monitor
from scheduler.errors import NrtAlertsError
from scheduler.evaluation.errors import ReferenceDataError, SweepGridError
from scheduler.evaluation.evaluate import evaluate
from scheduler.evaluation.report import fmt, write_report
from scheduler.pipeline import Pipeline, RunResult

log = logging.getLogger(__name__)

RUN_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
RUN_KEYS = {"name", "monitor"}
BASE_KEYS = {"monitor"}


@dataclass(frozen=True)
class SweepRun:
    """One parameter set of the grid."""

    name: str
    parameters: dict[str, Any]  # as the grid gives them (base + run), before defaults
    monitor: MonitorConfig


@dataclass
class RunScore:
    """What one run scored (error set when its pipeline or evaluation failed)."""

    name: str
    parameters: dict[str, Any]
    monitor: dict[str, Any]
    output_dir: str
    version: str | None = None
    producers_accuracy: float | None = None
    users_accuracy: float | None = None
    f1: float | None = None
    median_lag_days: float | None = None
    median_lag_observations: float | None = None
    initial_delay_days: int | None = None
    error: str | None = None
    rank: int | None = None


def _first_error(exc: ValidationError) -> str:
    """The first validation problem as 'field: message'."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key (check the spelling)" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{where}: {message.removeprefix('Value error, ')}"


def load_grid(path: Path | str) -> list[SweepRun]:
    """Read and validate every run of a GRID.toml up front, so a typo fails before hours of fitting."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SweepGridError(f"sweep grid not found: {path}") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepGridError(f"sweep grid {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"base", "run"}
    if unknown:
        raise SweepGridError(
            f"sweep grid {path}: unknown table(s) {', '.join(sorted(unknown))}; expected [base], [[run]]"
        )
    base = data.get("base", {})
    if not isinstance(base, dict) or set(base) - BASE_KEYS or not isinstance(base.get("monitor", {}), dict):
        raise SweepGridError(f"sweep grid {path}: [base] may only hold a monitor table")
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise SweepGridError(f"sweep grid {path} lists no [[run]] tables")
    parsed: list[SweepRun] = []
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise SweepGridError(f"sweep grid {path}: run {i + 1} is not a table")
        name = run.get("name")
        label = f"run {name!r}" if isinstance(name, str) else f"run {i + 1}"
        if not isinstance(name, str) or not RUN_NAME.match(name):
            raise SweepGridError(f"sweep grid {path}: {label} needs a name of letters, digits, '.', '_' or '-'")
        if name in {r.name for r in parsed}:
            raise SweepGridError(f"sweep grid {path}: {label} appears twice")
        if set(run) - RUN_KEYS or not isinstance(run.get("monitor"), dict):
            raise SweepGridError(f"sweep grid {path}: {label} must hold exactly a name and a monitor table")
        # The monitor dict is opaque here: parse_monitor knows the algorithms and their keys.
        parameters = {**base.get("monitor", {}), **run["monitor"]}
        try:
            monitor = parse_monitor(parameters)
        except ValidationError as exc:
            raise SweepGridError(f"sweep grid {path}: {label}: invalid monitor: {_first_error(exc)}") from exc
        parsed.append(SweepRun(name, parameters, monitor))
    return parsed


def run_config(cfg: Config, run: SweepRun, out: Path) -> Config:
    """The config of one run: its monitor, and its own output folder."""
    return cfg.model_copy(
        update={"monitor": run.monitor, "output": cfg.output.model_copy(update={"dir": out / run.name})}
    )


def _check(kind: str, result: RunResult) -> None:
    """A run whose fit or update failed on a tile would be scored on partial alerts: fail it instead."""
    if result.failed:
        raise NrtAlertsError(f"{kind} failed on tile {result.failed[0].tile_id}: {result.failed[0].error}")


def _score(cfg: Config, run: SweepRun, out: Path, reference: Path, until: dt.datetime) -> RunScore:
    """Fit, update, evaluate and report one run; a failure is recorded, not raised."""
    c = run_config(cfg, run, out)
    score = RunScore(run.name, run.parameters, run.monitor.model_dump(mode="json"), str(c.output.dir))
    try:
        pipeline = Pipeline(c)
        _check("fit", pipeline.run_fit())
        _check("update", pipeline.run_update(until))
        evaluation = evaluate(c, reference, pipeline=pipeline)
        write_report(evaluation, c.output.dir / "evaluation")
    except NrtAlertsError as exc:
        score.error = str(exc)
        log.error("sweep run %s failed: %s", run.name, exc)
        return score
    m = evaluation.metrics
    score.version = evaluation.version
    score.producers_accuracy, score.users_accuracy, score.f1 = m.producers_accuracy, m.users_accuracy, m.f1
    score.median_lag_days = m.lag_days.median
    score.median_lag_observations = m.lag_observations.median if m.lag_observations else None
    score.initial_delay_days = m.initial_delay_days
    log.info(
        "sweep run %s: PA %s, UA %s, F1 %s",
        run.name,
        fmt(score.producers_accuracy),
        fmt(score.users_accuracy),
        fmt(score.f1),
    )
    return score


def rank(scores: list[RunScore]) -> list[RunScore]:
    """Best first: higher F1, then lower median lag; failed or unscored runs last."""

    def key(s: RunScore) -> tuple:
        lag = s.median_lag_days if s.median_lag_days is not None else float("inf")
        return (s.error is not None, s.f1 is None, -(s.f1 or 0.0), lag)

    ranked = sorted(scores, key=key)
    for i, score in enumerate(ranked, start=1):
        score.rank = i if score.error is None and score.f1 is not None else None
    return ranked


def render_markdown(ranked: list[RunScore], reference: Path) -> str:
    """The ranked table."""
    lines = [
        "# Monitor parameter sweep",
        "",
        f"Reference: {reference}. Ranked by F1, ties by the lower median lag.",
        "",
        "| rank | run | parameters | PA | UA | F1 | median lag (days) | median lag (obs) | initial delay (days) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in ranked:
        monitor = ", ".join(f"{k}={v}" for k, v in s.parameters.items())
        accuracy = [fmt(v) for v in (s.producers_accuracy, s.users_accuracy, s.f1)]
        cells = accuracy + [fmt(s.median_lag_days, 1), fmt(s.median_lag_observations, 1), fmt(s.initial_delay_days)]
        if s.error:
            cells = [f"failed: {s.error}"] + [""] * (len(cells) - 1)
        lines.append(f"| {fmt(s.rank)} | {s.name} | {monitor} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_sweep(cfg: Config, reference: Path, grid: Path, out: Path, until: dt.datetime) -> list[RunScore]:
    """Run every parameter set in turn (sequentially), then write sweep.json and sweep.md ranked by F1."""
    runs = load_grid(grid)
    reference = Path(reference).resolve()
    if not reference.is_file():
        raise ReferenceDataError(f"reference file not found: {reference}")
    scores = []
    for i, run in enumerate(runs, start=1):
        log.info("sweep run %d of %d: %s", i, len(runs), run.name)
        scores.append(_score(cfg, run, Path(out), reference, until))
    ranked = rank(scores)
    atomic.write_json(
        Path(out) / "sweep.json",
        {
            "reference": str(reference),
            "grid": str(grid),
            "until": until.isoformat(),
            "ranking": "f1 descending, then median lag in days ascending",
            "runs": [vars(s) for s in ranked],
        },
    )
    atomic.write_bytes(Path(out) / "sweep.md", render_markdown(ranked, reference).encode("utf-8"))
    return ranked
