"""CCDCNRT at scale: fit, one monitor step, layers and alert stage on 1000 x 1000 px x 150 acquisitions.

    python bench/ccdcnrt_speed.py [--quick | --smoke] [--repeats N]

A synthetic seasonal NDVI-like series (8-day revisit from 2019, noise 0.02, 30 % of observations missing) goes
through scheduler.ccdcnrt.CCDCNRT in-process: `fit()` of the whole stack, `monitor()` of one more acquisition,
then `layers()` and `alert_stage()`. Formerly tests/test_ccdcnrt.py::test_speed_1000_by_1000_by_150: a speed
target is measured here, not timed in the test suite.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, load_average, mode_of, stats, table, write_result  # noqa: E402

from scheduler.ccdcnrt import CCDCNRT  # noqa: E402
from scheduler.config import CCDCNRTConfig  # noqa: E402
from scheduler.monitors.sepal import PARAMETERS  # noqa: E402

# SEPAL's rules (the class's own defaults) and the project's defaults (the config's: the mechanisms on).
VARIANTS = {
    "sepal": {},
    "project_defaults": CCDCNRTConfig().model_dump(include=set(PARAMETERS)),
}

SIZE = {"full": 1000, "quick": 1000, "smoke": 64}
N_TIME = 150
REPEATS = {"full": 3, "quick": 1, "smoke": 1}


def stack(n: int, n_time: int) -> xr.DataArray:
    """The synthetic series: a yearly cosine around 0.7, Gaussian noise, 30 % NaN (seed 1)."""
    times = pd.date_range("2019-01-01", periods=n_time, freq="8D")
    t = ((times - pd.Timestamp("1970-01-01")).total_seconds() / 86400 / 365.25).to_numpy()
    signal = (0.7 + 0.1 * np.cos(2 * np.pi * t)).astype(np.float32)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((n_time, n, n), dtype=np.float32)
    data *= np.float32(0.02)
    data += signal[:, None, None]
    data[rng.random((n_time, n, n), dtype=np.float32) < 0.3] = np.nan
    return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": times})


def once(da: xr.DataArray, variant: str) -> dict[str, float]:
    """Seconds of each step on a fresh model; the fitted mask must cover the area (else the numbers mean nothing)."""
    model = CCDCNRT(**VARIANTS[variant])
    t0 = time.perf_counter()
    model.fit(da)
    t1 = time.perf_counter()
    model.monitor(da.values[-1], dt.datetime(2022, 4, 15))
    t2 = time.perf_counter()
    model.layers()
    model.alert_stage()
    t3 = time.perf_counter()
    fitted = float((model.mask == 1).mean())
    if fitted <= 0.99:
        raise SystemExit(f"only {fitted:.1%} of the pixels were fitted: the benchmark's input is wrong")
    return {"fit": t1 - t0, "monitor": t2 - t1, "layers_and_stage": t3 - t2, "fitted_fraction": fitted}


def main() -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    mode = mode_of(args)
    n, repeats = SIZE[mode], args.repeats or REPEATS[mode]
    da = stack(n, N_TIME)
    loads = [load_average()]
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeats):
        for variant in VARIANTS:  # alternating, so both see the same machine
            runs[variant].append(once(da, variant))
            loads.append(load_average())
    steps = ("fit", "monitor", "layers_and_stage")
    result = {
        "mode": mode,
        "pixels": [n, n],
        "acquisitions": N_TIME,
        "variants": VARIANTS,
        "runs": runs,
        "seconds": {v: {step: stats([r[step] for r in runs[v]]) for step in steps} for v in VARIANTS},
        "load_average": loads,
    }
    path = write_result(args.results, "ccdcnrt_speed", result)
    rows = [[step, *(result["seconds"][v][step]["median"] for v in VARIANTS)] for step in steps]
    print(table(["step", *(f"{v}: median s ({n} x {n} x {N_TIME}, {repeats} runs)" for v in VARIANTS)], rows))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
