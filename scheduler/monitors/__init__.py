"""Every monitor behind one interface (base.Monitor), one class per family, looked up from the config's class.

Families: counting monitors (nrt's IQR, CCDC: counting.py), sigma monitors (nrt's EWMA, CuSum, MoSum: sigma.py),
CCDC-NRT (sepal.py); nrt's private API is reached through scheduler/nrt_boundary.py only.
"""

from scheduler.monitors.base import EXTRA_LAYERS, SERIES_ATTR, Monitor, MonitorState, naive_utc
from scheduler.monitors.registry import (
    MONITOR_CLASSES,
    absorb,
    export_model,
    fit_monitor,
    is_anomalous,
    monitor_for,
    monitor_of,
    report_layers,
    residual_sigma,
)

__all__ = [
    "EXTRA_LAYERS",
    "MONITOR_CLASSES",
    "SERIES_ATTR",
    "Monitor",
    "MonitorState",
    "absorb",
    "export_model",
    "fit_monitor",
    "is_anomalous",
    "monitor_for",
    "monitor_of",
    "naive_utc",
    "report_layers",
    "residual_sigma",
]
