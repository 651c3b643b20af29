"""Every monitor behind one interface (base.Monitor), one class per family, looked up from the config's class.

Families: counting monitors (nrt's IQR, CCDC: counting.py), sigma monitors (nrt's EWMA, CuSum, MoSum: sigma.py),
CCDC-NRT (sepal.py); nrt's private API is reached through scheduler/nrt_boundary.py only.

A new algorithm is a Monitor subclass whose `models` maps its config class (scheduler/config.py) to its model class,
listed in registry.FAMILIES; a mechanism shared by families (another anomaly test, a normalisation of residuals)
overrides `limits`/`outside`, `stage` or `layers` in a subclass or mixin. The model's attributes are what the state
file stores (arrays and JSON scalars); callers use the functions below, not the families.
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
