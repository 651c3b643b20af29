"""Peak memory and time of one tile's fit or fast-forward, for docs/scaling.md.

Run in a fresh process per measurement (peak RSS is the process's), with the code under test first on the path:

    PYTHONPATH=$PWD python bench/scaling.py --archive demo/archive --out /tmp/run fit --size 1000
    PYTHONPATH=$PWD python bench/scaling.py --archive demo/archive --out /tmp/run forward --size 1000 --until 2023-07-20

The archive is a demo archive (scheduler.demo.generate_demo), e.g. 1000 x 1000 px, every 2 days from 2022-01-01;
the area is its top-left size x size pixels in one tile.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import resource
import sys
import time
from pathlib import Path

CONFIG = """\
[area]
crs = "EPSG:32633"
resolution = 20
bounds = [500000, {miny}, {maxx}, 5400000]
tile_size = {size}

[source]
kind = "static"
catalog = "{archive}/catalog.json"
collection = "sentinel-2-l2a-demo"
max_cloud_cover = 95

[forest_mask]
path = "{archive}/forest_mask.tif"

[monitor]
{monitor}

[history]
start = 2022-01-01
end = {history_end}

[output]
dir = "{out}"
{compute}"""


def _rss_mb() -> float:
    """The process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    """Write the config, run the step, print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--monitor", default='algorithm = "iqr"\nsensitivity = 2.5')
    parser.add_argument("--compute", default="", help="Lines of a [compute] table (new code only)")
    parser.add_argument("--profile", type=Path, help="Write cProfile stats here and print the top 25")
    parser.add_argument("step", choices=["fit", "forward"])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--history-end", default="2022-12-31")
    parser.add_argument("--until", default="2024-06-30")
    args = parser.parse_args()

    from scheduler.config import load_config
    from scheduler.pipeline import Pipeline

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "nrt-alerts.toml"
    path.write_text(
        CONFIG.format(
            miny=5400000 - 20 * args.size,
            maxx=500000 + 20 * args.size,
            size=args.size,
            archive=args.archive.resolve(),
            monitor=args.monitor,
            history_end=args.history_end,
            out=args.out.resolve() / "output",
            compute=f"\n[compute]\n{args.compute}\n" if args.compute else "",
        )
    )
    cfg = load_config(path)
    pipeline = Pipeline(cfg)
    (tile,) = pipeline.tiles
    baseline_mb = _rss_mb()
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    if args.step == "fit":
        state = pipeline.fit_tile(tile)
        acquisitions = state.history_acquisitions
    else:
        until = dt.datetime.combine(dt.date.fromisoformat(args.until), dt.time.max, tzinfo=dt.UTC)
        acquisitions = len(pipeline.update_tile(tile, until).absorbed)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "step": args.step,
                "size": args.size,
                "acquisitions": acquisitions,
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(peak_mb),
                "rss_before_mb": round(baseline_mb),
            }
        )
    )
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(str(args.profile), stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
