"""nrt imported through the scheduler package leaves scipy.stats unloaded until CuSum, MoSum or ROC use it."""

from __future__ import annotations

import json
import subprocess
import sys

# Critical values nrt computes with scipy (CuSum's OLS boundary, ROC's recursive CuSum boundary), then what is loaded.
PROBE = """
import json, sys
{prelude}
import nrt.utils_efp as efp
loaded_before = sorted(m for m in ("scipy.stats", "scipy.optimize", "nrt.data", "fiona") if m in sys.modules)
values = [efp._cusum_ols_test_crit(0.05), efp._cusum_rec_test_crit(0.05), efp._cusum_ols_test_crit(0.01)]
values.append(efp._mosum_ols_test_crit(0.05, h=0.25, period=10))  # nrt.data's table of critical values
real = type(sys.modules["scipy.stats"]).__name__, hasattr(sys.modules["scipy"].stats, "ttest_ind")
real += (hasattr(sys.modules["nrt.data"], "mre_crit_table"),)
print(json.dumps({{"before": loaded_before, "values": values, "real": real}}))
"""


def _probe(prelude: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(prelude=prelude)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_scheduler_defers_scipy_and_nrt_computes_the_same_critical_values():
    deferred = _probe("import scheduler.monitors")
    plain = _probe("")
    assert deferred["before"] == []  # importing every monitor class did not load them
    assert plain["before"] == ["fiona", "nrt.data", "scipy.optimize", "scipy.stats"]
    assert deferred["values"] == plain["values"]
    assert abs(deferred["values"][1] - 0.9478982340418134) < 1e-8  # nrt's default crit (alpha 0.05), as brentq finds it
    # The first use loaded the real modules: later imports of scipy.stats get scipy's own module.
    assert deferred["real"] == ["module", True, True]


def test_cusum_and_mosum_monitors_fit_after_deferred_import():
    script = """
import sys
import numpy as np, pandas as pd, xarray as xr
import scheduler.monitors
from nrt.monitor.cusum import CuSum
from nrt.monitor.mosum import MoSum
rng = np.random.default_rng(0)
dates = pd.date_range("2021-01-01", periods=60, freq="6D")
values = 0.7 + 0.05 * rng.standard_normal((60, 3, 3)).astype("float32")
da = xr.DataArray(values, dims=("time", "y", "x"), coords={"time": dates})
for cls in (CuSum, MoSum):
    m = cls(sensitivity=0.05)
    m.fit(da)
    print(cls.__name__, float(m.critval))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    crit = dict(line.split() for line in out.stdout.splitlines())
    assert abs(float(crit["CuSum"]) - 2.795483485809851) < 1e-9  # scipy's optimize.golden on norm, via stand-ins
    assert float(crit["MoSum"]) > 0
