"""The accuracy matrix behind docs/accuracy.md: one real cell, and the report's verdicts."""

from __future__ import annotations

from scheduler.evaluation.matrix import MONITORS, Cell, _run_cell, render


def test_one_cell_runs_the_whole_chain(tmp_path) -> None:
    cell = _run_cell(tmp_path, "fire", "ccdc-nrt")
    assert cell.error is None
    assert cell.disturbed > 100
    assert cell.pa >= 0.95 and cell.ua >= 0.95
    assert cell.lag_obs_confirmed is not None and 1 <= cell.lag_obs_confirmed <= 4


def test_report_names_the_best_and_the_target() -> None:
    cells = [
        Cell("clear-cut", "iqr, sensitivity 2.5", pa=1.0, ua=0.99, f1=0.995, disturbed=10, lag_obs_confirmed=3),
        Cell("clear-cut", "ccdc", pa=0.9, ua=0.99, f1=0.94, disturbed=10, lag_obs_confirmed=3),
        Cell("clear-cut", "ewma", pa=1.0, ua=0.4, f1=0.57, disturbed=10, lag_obs_confirmed=1),
    ]
    cells += [Cell(s, m, false_alarm_rate=0.0) for s in ("drought", "haze", "non-forest") for m in MONITORS]
    cells += [Cell("clear-cut", "cusum", error="boom")]
    text = render(cells, generated="2026-01-01")
    assert "Best on clear-cut: **iqr, sensitivity 2.5** (F1 0.995)." in text
    assert "met by **iqr, sensitivity 2.5**." in text  # ccdc misses PA, ewma misses UA
    assert "| cusum | failed: boom |" in text
    no_target = render([c for c in cells if c.monitor != "iqr, sensitivity 2.5"], generated="2026-01-01")
    assert "No configuration meets" in no_target
