"""Draw producer's and user's accuracy against detection lag (days and valid observations) as a PNG."""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scheduler.evaluation.metrics import INITIAL_DELAY_PA, CurvePoint, Metrics


def _draw(ax: Axes, curve: list[CurvePoint], delay: int | None, xlabel: str, *, steps: bool) -> None:
    """One panel: PA and UA against lag, the 2 % line and the initial delay."""
    lags = [p.lag for p in curve]
    pa = [p.producers_accuracy if p.producers_accuracy is not None else float("nan") for p in curve]
    ua = [p.users_accuracy if p.users_accuracy is not None else float("nan") for p in curve]
    style = {"drawstyle": "steps-post"} if steps else {"marker": "o"}
    ax.plot(lags, pa, label="producer's accuracy", color="#1b7837", **style)
    ax.plot(lags, ua, label="user's accuracy", color="#762a83", linestyle="--", **style)
    ax.axhline(INITIAL_DELAY_PA, color="grey", linewidth=0.8, linestyle=":")
    if delay is not None:
        ax.axvline(delay, color="grey", linewidth=0.8, linestyle="-.", label=f"initial delay {delay}")
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


def accuracy_vs_lag_png(metrics: Metrics, title: str) -> bytes:
    """The two-panel figure as PNG bytes (Agg canvas: no display, no global pyplot state)."""
    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    days, observations = figure.subplots(1, 2)
    _draw(days, metrics.accuracy_vs_lag_days, metrics.initial_delay_days, "detection lag (days)", steps=True)
    days.set_ylabel("accuracy (detections within the lag)")
    if metrics.accuracy_vs_lag_observations:
        _draw(
            observations,
            metrics.accuracy_vs_lag_observations,
            metrics.initial_delay_observations,
            "detection lag (valid observations)",
            steps=False,
        )
    else:
        observations.set_axis_off()
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
