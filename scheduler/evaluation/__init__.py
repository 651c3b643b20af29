"""Accuracy of the published alerts against a reference, and sweeps over monitor parameters."""

from scheduler.evaluation.evaluate import Evaluation, evaluate, summary_line
from scheduler.evaluation.reference import Reference, load_reference
from scheduler.evaluation.report import write_report
from scheduler.evaluation.sweep import load_grid, run_sweep

__all__ = [
    "Evaluation",
    "Reference",
    "evaluate",
    "load_grid",
    "load_reference",
    "run_sweep",
    "summary_line",
    "write_report",
]
