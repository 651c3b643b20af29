"""The update step against the limit: time per pixel per acquisition beside a memory-bandwidth floor.

    python bench/limit.py [--quick | --smoke] [--repeats N]

On a one-tile deployment (1000 x 1000 px, fitted and fast-forwarded with the CLI), for the next acquisitions:
- `absorb`: nrt-alerts' in-memory update of a tile state by one acquisition (scheduler.monitors.absorb: nrt's
  `monitor()` plus our alert bookkeeping), and nrt's bare `monitor()` alone on the same state;
- `update_step`: Pipeline.update_tile for one new acquisition (lock, state read, search, odc-stac load, absorb,
  state write; no publishing), i.e. what a scheduled run does per tile;
- the floor: a numpy copy of every array of the same state (each byte read once and written once, plus the
  acquisition's input array), the least any update that touches the whole state must move through memory.
The ratio time / floor says how far the update is from memory-bound.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    base_parser,
    end_of_day,
    load_average,
    mode_of,
    standard_deployment,
    stats,
    table,
    write_result,
)

ACQUISITIONS = {"full": 8, "quick": 4, "smoke": 2}
REPEATS = {"full": 3, "quick": 2, "smoke": 1}
FLOOR_REPEATS = 15


def state_arrays(state) -> list[np.ndarray]:
    """Every per-pixel array of a tile state: nrt's and our bookkeeping."""
    monitor = state.monitor.monitor
    arrays = [v for k, v in vars(monitor).items() if isinstance(v, np.ndarray) and v.ndim >= 2 and k not in ("x", "y")]
    return arrays + list(state.monitor.extras.values())


def copy_floor(arrays: list[np.ndarray], acquisition: np.ndarray, repeats: int) -> list[float]:
    """Seconds to copy every state array once into preallocated buffers, plus the input array."""
    targets = [np.empty_like(a) for a in arrays]
    scratch = np.empty_like(acquisition)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for src, dst in zip(arrays, targets, strict=True):
            np.copyto(dst, src)
        np.copyto(scratch, acquisition)
        times.append(time.perf_counter() - t)
    return times


def bandwidth_gbs(nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Memory copy bandwidth (bytes read + written per second) of one large buffer."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    from scheduler.config import load_config
    from scheduler.loading import acquisition_key, load_index
    from scheduler.monitors import absorb, naive_utc
    from scheduler.pipeline import Pipeline
    from scheduler.state import load_state

    args = base_parser(__doc__.splitlines()[0]).parse_args()
    mode = mode_of(args)
    n_acq = ACQUISITIONS[mode]
    repeats = args.repeats or REPEATS[mode]
    _, config, dates, start = standard_deployment(args.work, mode == "smoke")
    nxt = dates[start + 1 : start + 1 + n_acq]
    cfg = load_config(config)
    pipeline = Pipeline(cfg)
    tile = pipeline.tiles[0]
    pixels = tile.width * tile.height
    fitted = load_state(pipeline.tile_state_path(tile))
    items = pipeline.source.search(tile.bounds_4326, dates[start + 1] - dt.timedelta(hours=1), end_of_day(nxt[-1]))
    data = load_index(items, tile, cfg)
    frames = [data.isel(time=i).values for i in range(data.sizes["time"])]
    whens = [dt.datetime.fromisoformat(acquisition_key(t)).replace(tzinfo=dt.UTC) for t in data.time.values]
    loads = [load_average()]

    absorb_s, monitor_s = [], []
    for _ in range(repeats):
        state = copy.deepcopy(fitted.monitor)
        bare = copy.deepcopy(fitted.monitor.monitor)
        for frame, when in zip(frames, whens, strict=True):
            absorb_s.append(_timed(lambda s=state, f=frame, w=when: absorb(s, f, w)))
            arr = np.where(np.isfinite(frame), frame, np.nan).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                monitor_s.append(_timed(lambda m=bare, a=arr, w=when: m.monitor(array=a, date=naive_utc(w))))
    loads.append(load_average())

    # What the update step would cost if it loaded only the new acquisition (it loads every one since the history).
    load_one_s = []
    for item in items:
        load_one_s.append(_timed(lambda i=item: load_index([i], tile, cfg)))
    searched = pipeline.source.search(tile.bounds_4326, dt.datetime(2023, 1, 1, tzinfo=dt.UTC), end_of_day(nxt[0]))
    loads.append(load_average())

    step_s = []
    for _ in range(1):  # each acquisition is one sample already, and a step reloads the whole monitoring period
        work = args.work / "limit-step"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(cfg.output.state_dir, work / "state")
        step_cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": work})})
        step = Pipeline(step_cfg)
        for when in whens:
            t = time.perf_counter()
            outcome = step.update_tile(tile, end_of_day(when))
            step_s.append(time.perf_counter() - t)
            assert outcome.absorbed, f"no acquisition absorbed up to {when}"
    loads.append(load_average())

    arrays = state_arrays(fitted)
    state_bytes = sum(a.nbytes for a in arrays)
    floor_s = copy_floor(arrays, frames[0], FLOOR_REPEATS)
    bw = bandwidth_gbs()
    loads.append(load_average())

    def per_pixel_ns(seconds: list[float]) -> float:
        return float(np.median(seconds)) / pixels * 1e9

    floor_ns = per_pixel_ns(floor_s)
    result = {
        "settings": {"mode": mode, "repeats": repeats, "acquisitions": len(frames)},
        "tile_px": [tile.width, tile.height],
        "monitor": type(fitted.monitor.monitor).__name__,
        "state_arrays": len(arrays),
        "state_bytes": state_bytes,
        "state_bytes_per_pixel": state_bytes / pixels,
        "absorb_s": stats(absorb_s),
        "nrt_monitor_s": stats(monitor_s),
        "update_step_s": stats(step_s),
        "load_one_acquisition_s": stats(load_one_s),
        "items_searched_by_one_update": len(searched),
        "floor_copy_s": stats(floor_s),
        "copy_bandwidth_gb_s": round(bw, 2),
        "ns_per_pixel_per_acquisition": {
            "absorb": per_pixel_ns(absorb_s),
            "nrt_monitor": per_pixel_ns(monitor_s),
            "update_step": per_pixel_ns(step_s),
            "load_one_acquisition": per_pixel_ns(load_one_s),
            "floor_copy": floor_ns,
        },
        "ratio_to_floor": {},
        "load_average": loads,
    }
    ns = result["ns_per_pixel_per_acquisition"]
    result["ratio_to_floor"] = {k: v / floor_ns for k, v in ns.items() if k != "floor_copy"}
    write_result(args.results, "limit", result)
    rows = [
        [name, result["ns_per_pixel_per_acquisition"][name], result["ratio_to_floor"].get(name, 1.0)]
        for name in ("floor_copy", "nrt_monitor", "absorb", "load_one_acquisition", "update_step")
    ]
    print(f"tile {tile.width}x{tile.height}, state {state_bytes / 2**20:.0f} MB ({state_bytes / pixels:.0f} B/px)")
    print(table(["step", "ns/px/acq", "x floor"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
