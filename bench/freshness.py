"""Freshness: from a new acquisition appearing in the STAC source to its alerts in a served tile.

    python bench/freshness.py [--quick | --smoke] [--repeats N] [--interval S]

A one-tile deployment (1000 x 1000 px) fitted and fast-forwarded with the CLI is served by the real
`nrt-alerts serve` with its scheduler running every --interval seconds (real clock). Its source is a static
catalog this script controls: at t0 the next acquisition's item is added (item file, then catalog.json replaced
atomically; the source rereads the catalog when it changes). The script polls a served XYZ tile of the `alerts`
layer until its ETag moves to the new publication, i.e. a tile drawn from the new acquisition's alerts (t1);
it checks that the latest publication is that acquisition. Latency t1 - t0 includes the wait for the next
scheduler run (0 .. interval); the target is latency <= 60 s + interval.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import httpx
import morecantile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    GrowingSource,
    base_parser,
    fresh_dir,
    load_average,
    mode_of,
    recorded_runs,
    served,
    stats,
    table,
    wait_for_runs,
    write_config,
    write_result,
)

INTERVAL = {"full": 10.0, "quick": 5.0, "smoke": 1.0}
REPEATS = {"full": 5, "quick": 3, "smoke": 1}
TARGET_S = 60.0
TMS = morecantile.tms.get("WebMercatorQuad")


def center_tile(cfg, zoom: int) -> morecantile.Tile:
    """The tile at the area's centre."""
    from scheduler.grid import area_tiles

    west, south, east, north = area_tiles(cfg.area)[0].bounds_4326
    return TMS.tile((west + east) / 2, (south + north) / 2, zoom)


def main() -> int:
    from common import standard_deployment

    from scheduler.config import load_config

    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--interval", type=float, default=None, help="Scheduler interval in seconds")
    args = p.parse_args()
    mode = mode_of(args)
    interval = args.interval or INTERVAL[mode]
    repeats = args.repeats or REPEATS[mode]
    smoke = mode == "smoke"

    archive, deployed, dates, k = standard_deployment(args.work, smoke)
    root = fresh_dir(args.work / ("freshness-smoke" if smoke else "freshness"))
    shutil.copytree(deployed.parent / "output", root / "output")
    source = GrowingSource(root / "source", archive)
    absorbed_until = dates[k]
    source.add([d for d in source.docs.values() if source.item_time(d) <= absorbed_until])
    pending = [d for d in dates[k + 1 :]][:repeats]
    if len(pending) < repeats:
        raise SystemExit(f"only {len(pending)} acquisitions left after {absorbed_until}")
    config = write_config(
        root, archive, tile_size=archive.spec.width, catalog=source.root / "catalog.json", interval=interval
    )
    cfg = load_config(config)
    size = archive.spec.width
    tile = center_tile(cfg, 16 if smoke else 14)
    recorded = recorded_runs(root / "output")  # before the server starts: its start-up run may come at once
    samples = []
    loads = []
    with served(config, root) as (base, _), httpx.Client(timeout=30.0) as client:
        tile_url = f"{base}/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"
        wait_for_runs(client, base, recorded + 1, timeout=60 + 3 * interval)  # the first scheduled run: nothing new
        before = client.get(tile_url)
        etag = before.headers.get("etag")
        body = before.content
        for when in pending:
            doc = next(d for d in source.docs.values() if source.item_time(d) == when)
            runs_before = len(client.get(f"{base}/status?limit=500").json().get("runs", []))
            loads.append(load_average())
            t0 = time.monotonic()
            source.add([doc])
            deadline = t0 + TARGET_S * 3 + interval
            while True:
                r = client.get(tile_url)
                if r.status_code == 200 and r.headers.get("etag") != etag:
                    t1 = time.monotonic()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no new tile within {deadline - t0:.0f} s; see {root / 'serve.log'}")
                time.sleep(0.05)
            latest = client.get(f"{base}/stac/alerts/publications.json").json()["latest"]
            expected = when.strftime("%Y%m%dT%H%M%S")
            runs = client.get(f"{base}/status?limit=500").json().get("runs", [])
            run = next((x for x in runs if x.get("version") == latest), {})
            samples.append(
                {
                    "acquisition": when.isoformat(),
                    "latency_s": round(t1 - t0, 3),
                    "latest_publication": latest,
                    "publication_is_acquisition": latest == expected,
                    "tile_changed": r.content != body,
                    "runs_since": len(runs) - runs_before,
                    "run": {key: run.get(key) for key in ("started", "finished", "acquisitions", "outcome")},
                }
            )
            etag, body = r.headers.get("etag"), r.content
            print(f"  {when:%Y-%m-%d}: {t1 - t0:.1f} s to a served tile (publication {latest})")
    latencies = [s["latency_s"] for s in samples]
    result = {
        "settings": {"mode": mode, "repeats": repeats, "interval_s": interval},
        "tile_px": [size, size],
        "served_tile": [tile.z, tile.x, tile.y],
        "latency_s": stats(latencies),
        "latency_minus_interval_s": stats([max(0.0, x - interval) for x in latencies]),
        "target_s": TARGET_S,
        "meets_target": max(latencies) <= TARGET_S + interval,
        "all_publications_match": all(s["publication_is_acquisition"] for s in samples),
        "samples": samples,
        "load_average": loads,
    }
    write_result(args.results, "freshness", result)
    rows = [
        [s["acquisition"][:10], s["latency_s"], s["publication_is_acquisition"], s["tile_changed"]] for s in samples
    ]
    print(table(["acquisition", "latency s", "published", "tile changed"], rows))
    print(f"median {result['latency_s']['median']:.1f} s with a {interval:.0f} s scheduler interval")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
