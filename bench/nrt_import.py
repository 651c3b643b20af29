"""Start-up cost of nrt's imports: `import server.cli` (every nrt-alerts command) with and without nrt_import.

scheduler/nrt_import.py defers scipy.stats, scipy.optimize and nrt.data while nrt imports (only CuSum, MoSum and ROC
use them); NRT_ALERTS_DEFER_SCIPY=0 turns that off. Each variant runs in a fresh interpreter, alternately, and the
median of the repeats is reported (wall time of the whole interpreter, as a user waits for it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {"deferred (default)": "1", "not deferred": "0"}
STATEMENT = "import server.cli"


def _once(switch: str) -> float:
    env = {**os.environ, "NRT_ALERTS_DEFER_SCIPY": switch}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", STATEMENT], env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    _once("1")  # warm the file cache and numba's caches once
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, switch in VARIANTS.items():
            times[name].append(_once(switch))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:20s} {value:6.2f} s  ({STATEMENT}, median of {args.repeats})")
    load = os.getloadavg()[0]
    args.results.mkdir(parents=True, exist_ok=True)
    record = {"statement": STATEMENT, "times": times, "medians": medians, "load_average": load}
    (args.results / "nrt_import.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
