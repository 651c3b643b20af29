"""nrt's private API (scheduler/nrt_boundary.py) and its public fallback give the same states, bit for bit."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import test_monitors
from test_monitors import EVERY_ALGORITHM, HISTORY_END, _cube, _forest

from catalog.series import SERIES_KEY
from scheduler import nrt_boundary
from scheduler.config import parse_monitor
from scheduler.monitors import EXTRA_LAYERS, MonitorState, absorb, fit_monitor, report_layers

NRT_ALGORITHMS = [m for m in EVERY_ALGORITHM if m["algorithm"] != "ccdc-nrt"] + [
    {"algorithm": "iqr", "fit_method": "RIRLS"},
    {"algorithm": "ewma", "fit_method": "ROC", "screen_outliers": "none"},
]


def _run(monitor: dict, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[MonitorState, dict]:
    """Fit on two years, absorb one (with an infinity and a one-date spike), report."""
    monkeypatch.setenv(nrt_boundary.FAST_ENV, "1" if fast else "0")
    assert nrt_boundary.fast() is fast
    cfg = parse_monitor(monitor)
    state = fit_monitor(cfg, _cube("2021-01-01", "2022-12-31", seed=1), _forest(), HISTORY_END + dt.timedelta(days=1))
    monitoring = _cube("2023-01-01", "2023-12-31", seed=2)
    values = monitoring.values.copy()
    values[3, 0, 0] = np.inf
    values[10, 6:, :] += 0.5
    for i, time in enumerate(monitoring.time.values):
        absorb(state, values[i], pd.Timestamp(time).to_pydatetime())
    return state, report_layers(state, cfg)


@pytest.mark.parametrize("monitor", NRT_ALGORITHMS, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_public_api_gives_the_fast_paths_state_bit_for_bit(monitor: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_layers = _run(monitor, True, monkeypatch)
    public, public_layers = _run(monitor, False, monkeypatch)
    assert (fast.monitor.mask == 3).sum() >= 9  # breaks were confirmed: the comparison covers monitoring
    arrays = {k for k, v in vars(fast.monitor).items() if isinstance(v, np.ndarray)}
    assert arrays == {k for k, v in vars(public.monitor).items() if isinstance(v, np.ndarray)}
    for name in sorted(arrays):
        mine, theirs = getattr(fast.monitor, name), getattr(public.monitor, name)
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes(), name
    for name in EXTRA_LAYERS:
        assert fast.extras[name].tobytes() == public.extras[name].tobytes(), name
    for name, layer in fast_layers.items():
        if name != SERIES_KEY:
            assert layer.tobytes() == public_layers[name].tobytes(), name
    # Neither mode leaves anything of its own on nrt's object.
    assert not {"predict", "_update_process"} & set(vars(fast.monitor))


@pytest.mark.parametrize("monitor", EVERY_ALGORITHM, ids=lambda m: m["algorithm"])
def test_monitor_tests_pass_with_the_public_api(monitor: dict, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """tests/test_monitors.py's detection and bit-for-bit tests (which run in the default, fast mode), public."""
    monkeypatch.setenv(nrt_boundary.FAST_ENV, "0")
    test_monitors.test_monitor_detects_the_planted_drop(monitor, tmp_path)
    if monitor["algorithm"] != "ccdc-nrt":
        test_monitors.test_absorb_equals_plain_nrt_bit_for_bit(monitor)
