"""Write an evaluation as evaluation.json, evaluation.md, evaluation.html and accuracy_vs_lag.png."""

from __future__ import annotations

import base64
import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path

from catalog import atomic
from scheduler.evaluation.evaluate import Evaluation
from scheduler.evaluation.metrics import LagStats
from scheduler.evaluation.plot import accuracy_vs_lag_png

REPORT_VERSION = 1
PLOT_NAME = "accuracy_vs_lag.png"

DEFINITIONS = (
    "Alert: a confirmed status (3, 6, and 7/8 confirmed then finished), plus provisional (2, 5) if asked for.",
    "True positive: an alert on a reference disturbance detected no earlier than its date minus the tolerance.",
    "An alert detected before that is a false alarm and the disturbance counts as missed.",
    "Producer's accuracy (recall) = TP / disturbed pixels; user's accuracy (precision) = TP / alerts; "
    "F1 = 2 TP / (disturbed + alerts); omission = 1 - PA; commission = 1 - UA.",
    "Lag = published detection date (the first anomalous observation of the alert) - reference date; "
    "in valid observations: clear observations after the reference date up to and including the detection date.",
    "Accuracy vs lag: only detections within the lag count; initial delay: the smallest lag where PA exceeds 2 %.",
    "Evaluated pixels: labelled by the reference and monitored (status not 250 or 255), except disturbances dated "
    "before the monitoring period; those dated after the data time count as undisturbed.",
)


@dataclass(frozen=True)
class Table:
    """A titled table shared by the Markdown and HTML renderings."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table: n/a for None, counts as integers, ratios and lags with fixed digits."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _lag_row(name: str, stats: LagStats | None) -> tuple[str, ...]:
    if stats is None:
        return (name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a")
    return (name, str(stats.n), *(fmt(v, 1) for v in (stats.median, stats.mean, stats.p90, stats.min, stats.max)))


def tables(evaluation: Evaluation) -> list[Table]:
    """The report's tables."""
    m = evaluation.metrics
    c = m.counts
    accuracy = Table(
        "Accuracy",
        ("metric", "value"),
        [
            ("Producer's accuracy (recall)", fmt(m.producers_accuracy)),
            ("User's accuracy (precision)", fmt(m.users_accuracy)),
            ("F1", fmt(m.f1)),
            ("Omission error", fmt(m.omission_error)),
            ("Commission error", fmt(m.commission_error)),
            ("False-alarm rate on undisturbed pixels", fmt(m.false_alarm_rate, 5)),
            ("Initial delay (days)", fmt(m.initial_delay_days)),
            ("Initial delay (valid observations)", fmt(m.initial_delay_observations)),
        ],
    )
    counts = Table(
        "Pixel counts",
        ("evaluated", "disturbed", "undisturbed", "alerts", "TP", "FP", "FN", "TN", "early detections"),
        [
            tuple(
                str(v)
                for v in (
                    c.evaluated,
                    c.disturbed,
                    c.undisturbed,
                    c.alerts,
                    c.true_positives,
                    c.false_positives,
                    c.false_negatives,
                    c.true_negatives,
                    c.early_detections,
                )
            )
        ],
    )
    lags = Table(
        "Detection lag of true positives (first anomalous observation, then confirmation)",
        ("unit", "n", "median", "mean", "p90", "min", "max"),
        [
            _lag_row("days to first detection", m.lag_days),
            _lag_row("valid observations to first detection", m.lag_observations),
            _lag_row("days to confirmation", m.confirmation_lag_days),
            _lag_row("valid observations to confirmation", m.confirmation_lag_observations),
        ],
    )
    curve = Table(
        "Producer's accuracy by lag in valid observations",
        ("valid observations", "PA", "UA", "F1"),
        [
            (str(p.lag), fmt(p.producers_accuracy), fmt(p.users_accuracy), fmt(p.f1))
            for p in (m.accuracy_vs_lag_observations or [])
        ],
    )
    return [accuracy, counts, lags, curve]


def _context(evaluation: Evaluation) -> list[str]:
    """The sentences saying what was evaluated against what."""
    ref = evaluation.reference
    settings = evaluation.settings
    period = settings["monitoring_period"]
    scope = evaluation.scope
    c = evaluation.metrics.counts
    # Every disturbed pixel of the reference is either in the tables' `disturbed` or left out for a stated reason.
    not_monitored = scope.get("left_out_disturbed_not_monitored", 0)
    lines = [
        f"Publication {evaluation.version} (data as of {evaluation.data_time.isoformat()}) against the {ref['kind']} "
        f"reference {ref['path']}: {ref['disturbed_pixels']} disturbed pixels dated {ref['first_date']} .. "
        f"{ref['last_date']}, of which {c.disturbed} are evaluated as disturbed (the tables below); "
        f"{not_monitored} are not monitored, {scope['left_out_disturbed_before_monitoring']} were disturbed "
        f"before the monitoring period and {scope['disturbed_after_data_counted_undisturbed']} after the data time "
        "(counted undisturbed).",
        f"Evaluated: {c.evaluated} pixels, {c.disturbed} disturbed and {c.undisturbed} undisturbed; "
        f"{scope['left_out_not_monitored']} labelled pixels are not monitored (outside the forest mask or nodata).",
        f"Alert status codes {', '.join(map(str, settings['alert_codes']))}; tolerance {settings['tolerance_days']} "
        f"days; monitoring period after {period['start']} up to {period['end']}.",
    ]
    lines += [f"Warning: {warning}" for warning in ref.get("warnings", [])]
    known = evaluation.known_undisturbed
    if known["pixels"]:
        lines.append(f"Areas marked undisturbed: {known['pixels']} pixels, {known['false_alarms']} false alarms.")
    return lines


def render_markdown(evaluation: Evaluation) -> str:
    """The report as Markdown (the plot is linked beside it)."""
    out = [f"# Alert evaluation: {evaluation.version}", ""]
    for line in _context(evaluation):
        out += [line, ""]
    for table in tables(evaluation):
        if not table.rows:
            continue
        out += [f"## {table.title}", "", "| " + " | ".join(table.header) + " |"]
        out.append("|" + "|".join("---" for _ in table.header) + "|")
        out += ["| " + " | ".join(row) + " |" for row in table.rows]
        out.append("")
    out += [f"![accuracy vs lag]({PLOT_NAME})", "", "## Definitions", ""]
    out += [f"- {line}" for line in DEFINITIONS]
    return "\n".join(out) + "\n"


def render_html(evaluation: Evaluation, png: bytes) -> str:
    """The report as one standalone HTML page with the plot embedded."""
    esc = html.escape
    body = [f"<h1>Alert evaluation: {esc(evaluation.version)}</h1>"]
    body += [f"<p>{esc(line)}</p>" for line in _context(evaluation)]
    for table in tables(evaluation):
        if not table.rows:
            continue
        head = "".join(f"<th>{esc(h)}</th>" for h in table.header)
        rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in table.rows)
        body.append(f"<h2>{esc(table.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    image = base64.b64encode(png).decode("ascii")
    body.append(f'<p><img alt="accuracy vs lag" src="data:image/png;base64,{image}"></p>')
    body.append("<h2>Definitions</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in DEFINITIONS) + "</ul>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:0.2em 0.6em;"
        "text-align:right}img{max-width:100%}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Alert evaluation {esc(evaluation.version)}</title><style>{style}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def report_json(evaluation: Evaluation) -> dict:
    """Every number, the reference, the publication and the config summary."""
    return {
        "report_version": REPORT_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        **evaluation.to_dict(),
        "definitions": list(DEFINITIONS),
    }


def write_report(evaluation: Evaluation, out_dir: Path) -> dict[str, Path]:
    """Write the four report files into out_dir; return them by kind."""
    out_dir = Path(out_dir)
    png = accuracy_vs_lag_png(
        evaluation.metrics, f"Alerts {evaluation.version} vs {Path(evaluation.reference['path']).name}"
    )
    paths = {
        "json": out_dir / "evaluation.json",
        "markdown": out_dir / "evaluation.md",
        "html": out_dir / "evaluation.html",
        "png": out_dir / PLOT_NAME,
    }
    atomic.write_json(paths["json"], report_json(evaluation))
    atomic.write_bytes(paths["markdown"], render_markdown(evaluation).encode("utf-8"))
    atomic.write_bytes(paths["html"], render_html(evaluation, png).encode("utf-8"))
    atomic.write_bytes(paths["png"], png)
    return paths
