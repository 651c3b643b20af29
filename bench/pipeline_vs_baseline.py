"""nrt-alerts against the nrt deployment guide's way (bench/baseline.py): fit, fast-forward, one daily update.

    python bench/pipeline_vs_baseline.py [--quick | --smoke] [--repeats N] [--workers 2]

Each phase runs in its own process(es); wall time and the peak of the summed resident memory of the process tree
(polled with psutil) are measured per phase. Both sides read the same demo archive, the same acquisitions (same
cloud limit) and fit the same monitor (IQR, trend, harmonic order 3, sensitivity 2.5, OLS).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    HISTORY,
    Measured,
    base_parser,
    cli,
    demo_archive,
    end_of_day,
    fresh_dir,
    load_average,
    mode_of,
    monitoring_dates,
    run_measured,
    stats,
    table,
    write_config,
    write_result,
)

PHASES = ("fit", "forward", "update")
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

    base = cli(phase, "-c", config, *(["--until", until.isoformat()] if until and phase != "fit" else []))
    base += args.nrt_args
    if args.nrt_mode == "single" or args.workers <= 1:
        return [base]
    tiles = [t.id for t in area_tiles(load_config(config).area)]
    shares = [tiles[i :: args.workers] for i in range(args.workers)]
    return [base + [a for t in share for a in ("--tile", t)] for share in shares if share]


def run_size(work: Path, width: int, height: int, repeats: int, args, smoke: bool) -> dict:
    """Every phase of both sides, `repeats` times, alternating sides."""
    archive = demo_archive(work, width, height, smoke=smoke)
    forward_until, update_until = phase_dates(archive)
    tile_size = args.tile_size or (max(16, width // 2) if smoke else 500)
    runs: dict[str, dict[str, list]] = {side: {p: [] for p in PHASES} for side in ("baseline", "nrt_alerts")}
    loads = []
    reused = reused_baseline(args, width, height) if args.reuse_baseline else None
    for r in range(repeats):
        base_dir = fresh_dir(work / f"vs-{width}x{height}" / "baseline")
        nrt_dir = fresh_dir(work / f"vs-{width}x{height}" / "nrt-alerts")
        config = write_config(nrt_dir, archive, tile_size=tile_size, extra=args.nrt_config_extra)
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
    for side, phases in runs.items():
        result[side] = {}
        for phase, ms in phases.items():
            result[side][phase] = {
                "wall_s": stats([m.wall_s for m in ms]),
                "peak_rss_mb": stats([m.peak_rss_mb for m in ms]),
            }
        total_wall = [sum(phases[p][i].wall_s for p in PHASES) for i in range(repeats)]
        total_peak = [max(phases[p][i].peak_rss_mb for p in PHASES) for i in range(repeats)]
        result[side]["end_to_end"] = {"wall_s": stats(total_wall), "peak_rss_mb": stats(total_peak)}
    b, n = result["baseline"]["end_to_end"], result["nrt_alerts"]["end_to_end"]
    speedup = b["wall_s"]["median"] / n["wall_s"]["median"]
    memory = n["peak_rss_mb"]["median"] / b["peak_rss_mb"]["median"]
    result["speedup_end_to_end"] = round(speedup, 2)
    result["memory_ratio"] = round(memory, 3)
    result["meets_speed_target"] = speedup >= TARGET_SPEEDUP
    result["meets_memory_target"] = memory <= TARGET_MEMORY
    return result


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
        for phase in (*PHASES, "end_to_end"):
            b, n = s["baseline"][phase], s["nrt_alerts"][phase]
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
    p.add_argument("--workers", type=int, default=2, help="nrt-alerts worker processes (default 2)")
    p.add_argument(
        "--nrt-mode",
        choices=["tiles", "single"],
        default="tiles",
        help="tiles: one `nrt-alerts --tile ...` process per worker; single: one process (e.g. with its own workers)",
    )
    p.add_argument("--nrt-args", nargs="*", default=[], help="Extra arguments for every nrt-alerts command")
    p.add_argument("--nrt-config-extra", default="", help="TOML appended to the nrt-alerts config")
    p.add_argument("--tile-size", type=int, default=None, help="nrt-alerts tile size (default 500)")
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
