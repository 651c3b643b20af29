"""nrt-alerts against the nrt deployment guide's way (bench/baseline.py): fit, fast-forward, one daily update.

    python bench/pipeline_vs_baseline.py [--quick | --smoke] [--repeats N] [--workers 2]

Each phase runs in its own process(es); wall time and the peak of the summed resident memory of the process tree
(polled with psutil) are measured per phase. Both sides read the same demo archive, the same acquisitions (same
cloud limit) and fit the same monitor (IQR, trend, harmonic order 3, sensitivity 2.5, OLS).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    HISTORY,
    GrowingSource,
    Measured,
    PeakRSS,
    base_parser,
    cli,
    demo_archive,
    end_of_day,
    fresh_dir,
    load_average,
    mode_of,
    monitoring_dates,
    recorded_runs,
    run_measured,
    served,
    stats,
    table,
    wait_for_runs,
    write_config,
    write_result,
)

PHASES = ("fit", "forward", "update")
# nrt-alerts' daily update as it runs in production: the scheduler job inside a running `nrt-alerts serve`.
SERVED = "update_served"
# nrt-alerts' deployment in one command: `nrt-alerts fit --forward --until ...` (each tile fast-forwarded after
# its fit, one process, one publication); the baseline's entry is its fit plus its forward.
FIT_FORWARD = "fit_forward"
SIZES = {"full": [(1000, 1000), (2000, 1000)], "quick": [(1000, 1000)], "smoke": [(64, 64)]}
REPEATS = {"full": 1, "quick": 1, "smoke": 1}
TARGET_SPEEDUP, TARGET_MEMORY = 3.0, 0.25


def phase_dates(archive) -> tuple[dt.datetime, dt.datetime]:
    """Fast-forward up to the last acquisition of 2023 (or the second to last one); the update takes the next."""
    dates = monitoring_dates(archive)
    k = max((i for i, d in enumerate(dates[:-1]) if d.year <= 2023), default=0)
    return end_of_day(dates[k]), end_of_day(dates[k + 1])


def baseline_commands(archive, data: Path, phase: str, until: dt.datetime | None) -> list[list[str]]:
    """One process, as the guide runs its scripts."""
    spec = archive.spec
    geobox = f"{spec.width},{spec.height},{spec.resolution},{spec.origin_x},{spec.origin_y},{spec.epsg}"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve().parent / "baseline.py"),
        phase,
        "--catalog",
        str(archive.catalog_path),
        "--forest-mask",
        str(archive.forest_mask_path),
        "--data",
        str(data),
        "--geobox",
        geobox,
        "--history-start",
        HISTORY[0].isoformat(),
        "--history-end",
        HISTORY[1].isoformat(),
    ]
    if until is not None:
        cmd += ["--until", until.replace(tzinfo=None).isoformat()]
    return [cmd]


def nrt_commands(config: Path, phase: str, until: dt.datetime | None, args) -> list[list[str]]:
    """`nrt-alerts <phase>`; with --nrt-mode tiles, one process per worker over its share of the tiles."""
    from scheduler.config import load_config
    from scheduler.grid import area_tiles

    if phase == FIT_FORWARD:
        base = cli("fit", "-c", config, "--forward", "--until", until.isoformat())
    else:
        base = cli(phase, "-c", config, *(["--until", until.isoformat()] if until and phase != "fit" else []))
    base += args.nrt_args
    if args.nrt_mode == "single" or args.workers <= 1:
        return [base]
    tiles = [t.id for t in area_tiles(load_config(config).area)]
    shares = [tiles[i :: args.workers] for i in range(args.workers)]
    return [base + [a for t in share for a in ("--tile", t)] for share in shares if share]


def nrt_extra(args) -> str:
    """Config lines of nrt-alerts' workers: --workers threads in one process, or one thread per tile process."""
    if "[compute]" in args.nrt_config_extra:  # the caller's own compute settings win
        return args.nrt_config_extra
    threads = args.workers if args.nrt_mode == "single" else 1
    return f"[compute]\nthreads = {threads}\n{args.nrt_config_extra}"


def run_size(work: Path, width: int, height: int, repeats: int, args, smoke: bool) -> dict:
    """Every phase of both sides, `repeats` times, alternating sides."""
    from scheduler.config import AreaConfig

    archive = demo_archive(work, width, height, smoke=smoke)
    forward_until, update_until = phase_dates(archive)
    # The config's default tile size (512: 2 x 2 tiles at 1000 x 1000, on the demo COGs' 256 px blocks).
    tile_size = args.tile_size or (max(16, width // 2) if smoke else AreaConfig.model_fields["tile_size"].default)
    runs: dict[str, dict[str, list]] = {side: {p: [] for p in PHASES} for side in ("baseline", "nrt_alerts")}
    runs["nrt_alerts"][SERVED] = []
    runs["nrt_alerts"][FIT_FORWARD] = []
    loads = []
    reused = reused_baseline(args, width, height) if args.reuse_baseline else None
    for r in range(repeats):
        base_dir = fresh_dir(work / f"vs-{width}x{height}" / "baseline")
        nrt_dir = fresh_dir(work / f"vs-{width}x{height}" / "nrt-alerts")
        config = write_config(nrt_dir, archive, tile_size=tile_size, extra=nrt_extra(args))
        for phase in PHASES:
            until = {"fit": None, "forward": forward_until, "update": update_until}[phase]
            loads.append(load_average())
            if reused:
                m = reused[phase][r % len(reused[phase])]
            else:
                m = run_measured(baseline_commands(archive, base_dir / "data", phase, until))
            runs["baseline"][phase].append(m)
            loads.append(load_average())
            m = run_measured(nrt_commands(config, phase, until, args), cwd=nrt_dir)
            runs["nrt_alerts"][phase].append(m)
            print(f"  {width}x{height} repeat {r + 1} {phase}: baseline {runs['baseline'][phase][-1]}, nrt-alerts {m}")
            if phase == "forward":  # the served update starts from the same fast-forwarded state
                snapshot = fresh_dir(nrt_dir.parent / "forwarded") / "output"
                shutil.copytree(nrt_dir / "output", snapshot)
        m = served_update(snapshot, archive, forward_until, update_until, tile_size, nrt_extra(args))
        runs["nrt_alerts"][SERVED].append(m)
        print(f"  {width}x{height} repeat {r + 1} {SERVED}: nrt-alerts {m}")
        one_dir = fresh_dir(work / f"vs-{width}x{height}" / "nrt-alerts-fit-forward")
        one_config = write_config(one_dir, archive, tile_size=tile_size, extra=nrt_extra(args))
        loads.append(load_average())
        m = run_measured(nrt_commands(one_config, FIT_FORWARD, forward_until, args), cwd=one_dir)
        runs["nrt_alerts"][FIT_FORWARD].append(m)
        print(f"  {width}x{height} repeat {r + 1} {FIT_FORWARD}: nrt-alerts {m}")
    result: dict = {
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "forward_until": forward_until.isoformat(),
        "update_until": update_until.isoformat(),
        "acquisitions": {
            "monitoring_until_forward": sum(1 for d in monitoring_dates(archive) if d <= forward_until),
            "update": 1,
        },
        "load_average": loads,
        "baseline_reused_from": str(args.results / "pipeline_vs_baseline.json") if reused else None,
    }
    runs["baseline"][FIT_FORWARD] = [
        Measured(wall_s=round(fit.wall_s + forward.wall_s, 3), peak_rss_mb=max(fit.peak_rss_mb, forward.peak_rss_mb))
        for fit, forward in zip(runs["baseline"]["fit"], runs["baseline"]["forward"], strict=True)
    ]
    for side, phases in runs.items():
        result[side] = {}
        for phase, ms in phases.items():
            result[side][phase] = {
                "wall_s": stats([m.wall_s for m in ms]),
                "peak_rss_mb": stats([m.peak_rss_mb for m in ms]),
            }
        # End to end: fit, fast-forward and the daily update as each side runs it (ours: the server's job).
        for name, steps in (
            ("end_to_end", _e2e(side)),
            ("end_to_end_separate", _e2e(side, one_command=False)),
            ("end_to_end_cli", PHASES),
        ):
            total_wall = [sum(phases[p][i].wall_s for p in steps) for i in range(repeats)]
            total_peak = [max(phases[p][i].peak_rss_mb for p in steps) for i in range(repeats)]
            result[side][name] = {"wall_s": stats(total_wall), "peak_rss_mb": stats(total_peak)}
    b, n = result["baseline"]["end_to_end"], result["nrt_alerts"]["end_to_end"]
    speedup = b["wall_s"]["median"] / n["wall_s"]["median"]
    memory = n["peak_rss_mb"]["median"] / b["peak_rss_mb"]["median"]
    result["speedup_end_to_end"] = round(speedup, 2)
    result["memory_ratio"] = round(memory, 3)
    result["meets_speed_target"] = speedup >= TARGET_SPEEDUP
    result["meets_memory_target"] = memory <= TARGET_MEMORY
    return result


def _e2e(side: str, *, one_command: bool = True) -> tuple[str, ...]:
    """The phases of one side's end-to-end run: ours deploys with `fit --forward`, then serves."""
    if side != "nrt_alerts":
        return PHASES
    return (FIT_FORWARD, SERVED) if one_command else ("fit", "forward", SERVED)


def served_update(
    forwarded: Path, archive, forward_until: dt.datetime, update_until: dt.datetime, tile_size: int, extra: str
) -> Measured:
    """One daily update as production runs it: `nrt-alerts serve` is running, a new acquisition appears in its
    source, a run is triggered (POST /admin/run, as the scheduler's next tick would start it); wall time from the
    acquisition's appearance to the run recorded, and the server's peak memory meanwhile."""
    import httpx

    root = fresh_dir(forwarded.parent.parent / "served")
    shutil.copytree(forwarded, root / "output")
    source = GrowingSource(root / "source", archive)
    source.add(source.docs_between(None, forward_until))
    new = source.docs_between(forward_until, update_until)
    token = secrets.token_hex(16)
    server = f'[server]\nadmin_token = "{token}"'
    catalog = source.root / "catalog.json"
    config = write_config(root, archive, tile_size=tile_size, catalog=catalog, extra=f"{extra}\n{server}")
    recorded = recorded_runs(root / "output")  # before the server starts: its start-up run may come at once
    with served(config, root) as (base, proc), httpx.Client(timeout=60.0) as client:
        runs = wait_for_runs(client, base, recorded + 1, timeout=300)  # the run at start-up: nothing new yet
        memory = PeakRSS(proc.pid).start()
        started = time.perf_counter()
        source.add(new)
        r = client.post(f"{base}/admin/run", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        done = wait_for_runs(client, base, len(runs) + 1, timeout=600)
        wall = time.perf_counter() - started
        peak = memory.stop()
        last = done[0]  # newest first
        latest = client.get(f"{base}/stac/alerts/publications.json").json()["latest"]
    if last.get("outcome") != "ok" or not last.get("acquisitions") or not latest.startswith(f"{update_until:%Y%m%d}"):
        raise RuntimeError(f"the served update did not absorb and publish {update_until:%Y-%m-%d}: {last}, {latest}")
    return Measured(wall_s=round(wall, 3), peak_rss_mb=peak)


def reused_baseline(args, width: int, height: int) -> dict[str, list[Measured]] | None:
    """The baseline's measurements of this area from the previous results (it does not change with nrt-alerts)."""
    path = args.results / "pipeline_vs_baseline.json"
    if not path.exists():
        return None
    for size in json.loads(path.read_text())["sizes"]:
        if (size["width"], size["height"]) == (width, height):
            return {
                p: [
                    Measured(wall_s=w, peak_rss_mb=m)
                    for w, m in zip(
                        size["baseline"][p]["wall_s"]["values"],
                        size["baseline"][p]["peak_rss_mb"]["values"],
                        strict=True,
                    )
                ]
                for p in PHASES
            }
    return None


def summary(sizes: list[dict]) -> str:
    """The terminal table."""
    rows = []
    for s in sizes:
        for phase in (*PHASES, SERVED, FIT_FORWARD, "end_to_end", "end_to_end_separate", "end_to_end_cli"):
            if phase not in s["nrt_alerts"]:  # results of an older version of this script
                continue
            b, n = s["baseline"]["update" if phase == SERVED else phase], s["nrt_alerts"][phase]
            rows.append(
                [
                    f"{s['width']}x{s['height']}",
                    phase,
                    b["wall_s"]["median"],
                    n["wall_s"]["median"],
                    round(b["wall_s"]["median"] / max(n["wall_s"]["median"], 1e-9), 2),
                    b["peak_rss_mb"]["median"],
                    n["peak_rss_mb"]["median"],
                    round(n["peak_rss_mb"]["median"] / max(b["peak_rss_mb"]["median"], 1e-9), 3),
                ]
            )
    headers = ["area", "phase", "base s", "nrt s", "speedup", "base MB", "nrt MB", "mem ratio"]
    return table(headers, rows)


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="nrt-alerts workers: threads or processes (default 2)")
    p.add_argument(
        "--nrt-mode",
        choices=["tiles", "single"],
        default="single",
        help="single: one nrt-alerts process using --workers threads per tile (compute.threads); tiles: one "
        "`nrt-alerts --tile ...` process per worker, each single-threaded",
    )
    p.add_argument("--nrt-args", nargs="*", default=[], help="Extra arguments for every nrt-alerts command")
    p.add_argument("--nrt-config-extra", default="", help="TOML appended to the nrt-alerts config")
    p.add_argument("--tile-size", type=int, default=None, help="nrt-alerts tile size (default: the config's, 512)")
    p.add_argument(
        "--reuse-baseline",
        action="store_true",
        help="Take the baseline's numbers from the previous results of the same area instead of re-running it",
    )
    p.add_argument("--size", action="append", help="WxH instead of the mode's sizes (repeatable)")
    args = p.parse_args()
    mode = mode_of(args)
    sizes = [tuple(map(int, s.split("x"))) for s in args.size] if args.size else SIZES[mode]
    repeats = args.repeats or REPEATS[mode]
    results = []
    for width, height in sizes:
        results.append(run_size(args.work, width, height, repeats, args, mode == "smoke"))
    settings = {
        "mode": mode,
        "repeats": repeats,
        "workers": args.workers,
        "nrt_mode": args.nrt_mode,
        "nrt_args": args.nrt_args,
        "nrt_config_extra": args.nrt_config_extra,
        "reuse_baseline": args.reuse_baseline,
    }
    write_result(args.results, "pipeline_vs_baseline", {"settings": settings, "sizes": results})
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
