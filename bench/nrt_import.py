"""Start-up cost of nrt's imports: `import server.cli` (every nrt-alerts command) with and without nrt_import.

scheduler/nrt_import.py defers scipy.stats, scipy.optimize and nrt.data while nrt imports (only CuSum, MoSum and ROC
use them); NRT_ALERTS_DEFER_SCIPY=0 turns that off. Each variant runs in a fresh interpreter, alternately, and the
import is timed inside it (no interpreter start-up): wall time, and CPU time, which on a busy shared machine is
close to what a quiet machine's wall time would be. The saving is the median of the paired differences.

    python bench/nrt_import.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {"deferred (default)": "1", "not deferred": "0"}
STATEMENT = "import server.cli"
CHILD = (
    "import sys, time; t, c = time.perf_counter(), time.process_time(); "
    f"{STATEMENT}; print('IMPORT_S', time.perf_counter() - t, time.process_time() - c, 'scipy.stats' in sys.modules)"
)


def _once(switch: str) -> dict:
    """One fresh interpreter: wall and CPU seconds of the import, and whether scipy.stats was loaded."""
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "NRT_ALERTS_DEFER_SCIPY": switch, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    wall, cpu, loaded = out.split("IMPORT_S")[1].split()
    return {"wall_s": float(wall), "cpu_s": float(cpu), "scipy_stats_loaded": loaded == "True"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    _once("1")  # warm the file cache and numba's caches once
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, switch in VARIANTS.items():
            runs[name].append(_once(switch))
        loads.append(os.getloadavg()[0])
    (on, off) = (runs[name] for name in VARIANTS)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s")} for name, rs in runs.items()}
    saving = {k: statistics.median(b[k] - a[k] for a, b in zip(on, off, strict=True)) for k in ("wall_s", "cpu_s")}
    for name, value in medians.items():
        print(f"{name:20s} wall {value['wall_s']:6.2f} s, CPU {value['cpu_s']:6.2f} s  (median of {args.repeats})")
    print(f"{'saving per start':20s} wall {saving['wall_s']:6.2f} s, CPU {saving['cpu_s']:6.2f} s  (paired medians)")
    record = {"statement": STATEMENT, "runs": runs, "medians": medians, "saving": saving, "load_average": loads}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "nrt_import.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
