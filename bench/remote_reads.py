"""Assets in object storage: nrt-alerts against nrt's deployment guide (bench/baseline.py) reading the same COGs
from an HTTP server with range requests and from moto's S3 API, both on loopback with 40 ms per request.

    python bench/remote_reads.py [--size 1000] [--revisit-days 10] [--latency-ms 40] [--smoke]

Per storage, each side runs fit, fast-forward and one daily update (the guide: three scripts; nrt-alerts:
`fit --forward --until` then `update --until`), each phase in its own process: wall time and peak RSS of the
process tree (bench/common.py), and the requests and bytes the server answered, per acquisition read, against
the least a reader must fetch: each asset's header and the blocks the area covers. The servers run in this process
(tests/remote_servers.py). The demo is the benchmark's, with one acquisition every `--revisit-days` days (the
default 10 halves the 5 of the other benchmarks: the whole run stays under about ten minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import (  # noqa: E402
    HISTORY,
    MAX_CLOUD_COVER,
    base_parser,
    cli,
    end_of_day,
    fresh_dir,
    json_items,
    load_average,
    machine,
    now_iso,
    run_measured,
    table,
    write_config,
    write_result,
)
from pipeline_vs_baseline import TARGET_MEMORY, TARGET_SPEEDUP, baseline_commands, served_update  # noqa: E402
from remote_servers import Served, http_files, moto_s3, remote_catalog, upload_tree  # noqa: E402

# The assets both sides read: the NDVI bands and the cloud mask.
READ = ("red", "nir08", "scl")
PHASES = ("fit", "forward", "update")
# nrt-alerts' daily update as production runs it: a job of the running `nrt-alerts serve` (bench/pipeline_vs_baseline).
SERVED = "update_served"
BUCKET = "sentinel-2-demo"


def demo(work: Path, size: int, revisit: int, smoke: bool):  # noqa: ANN201 (scheduler.demo's DemoArchive)
    """The benchmark's demo archive at this size and revisit (generated once under the work dir)."""
    from scheduler.demo import DemoSpec, generate_demo

    end = dt.date(2023, 5, 31) if smoke else dt.date(2024, 6, 30)
    spec = DemoSpec(width=size, height=size, revisit_days=revisit, end=end, n_clearcuts=2 if smoke else 12)
    return generate_demo(work / f"demo-remote-{size}-r{revisit}" / "archive", spec)


def listed(archive, start: dt.datetime, end: dt.datetime) -> list[dict]:  # noqa: ANN001
    """The items both sides' searches return in [start, end] (cloud cover within the limit)."""
    out = []
    for item in json_items(archive):
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        if start <= when <= end and item["properties"].get("eo:cloud_cover", 0) <= MAX_CLOUD_COVER:
            out.append(item)
    return out


def least(item: dict) -> dict[str, float]:
    """The least a reader fetches of an acquisition covering the whole area: per asset, its header (GDAL's first
    read, 16 KB) and every full-resolution block; in requests, one per block, or one for all (they are consecutive
    in a COG). Over HTTP, one HEAD per asset more for its size."""
    blocks = size = 0
    for key in READ:
        with rasterio.open(Path(item["_path"]).parent / Path(item["assets"][key]["href"]).name) as src:
            rows, cols = src.block_shapes[0]
            ids = [(r, c) for r in range(-(-src.height // rows)) for c in range(-(-src.width // cols))]
            size += HEADER_BYTES + sum(int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)) for r, c in ids)
        blocks += len(ids)
    return {"requests_by_block": len(READ) + blocks, "requests_merged": 2 * len(READ), "mb": size / 1e6}


# What GDAL reads of a COG at its open (GDAL_INGESTED_BYTES_AT_OPEN's default): its header.
HEADER_BYTES = 16384


def least_per_acquisition(items: list[dict]) -> dict[str, float]:
    """least() averaged over some acquisitions."""
    each = [least(item) for item in items]
    return {key: round(sum(e[key] for e in each) / len(each), 3) for key in each[0]}


@contextlib.contextmanager
def storage(kind: str, archive, work: Path, latency_s: float) -> Iterator[tuple[Served, Path]]:  # noqa: ANN001
    """The archive's COGs behind `kind` (http or s3), and a copy of its catalog pointing at them."""
    if kind == "http":
        with http_files(archive.root, latency_s) as served:
            yield served, remote_catalog(archive.root, work / "catalog-http", served.url)
        return
    with moto_s3(latency_s) as served:
        upload_tree(archive.root, BUCKET, tuple(f"_{key}.tif" for key in READ))  # moto keeps them in memory
        yield served, remote_catalog(archive.root, work / "catalog-s3", f"s3://{BUCKET}")


def nrt_commands(config: Path, phase: str, until: dt.datetime) -> list[list[str]]:
    """nrt-alerts' deployment: `fit --forward` for the fit and the fast-forward, then `update`."""
    if phase == "fit_forward":
        return [cli("fit", "-c", config, "--forward", "--until", until.isoformat())]
    return [cli("update", "-c", config, "--until", until.isoformat())]


def run_storage(kind: str, archive, work: Path, args) -> dict:  # noqa: ANN001
    """Both sides' phases reading the archive through `kind`; wall, peak RSS and traffic per phase."""
    history_end = dt.datetime.combine(HISTORY[1], dt.time(23, 59, 59), tzinfo=dt.UTC)
    monitoring = sorted(
        dt.datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00"))
        for i in listed(archive, history_end, dt.datetime.max.replace(tzinfo=dt.UTC))
    )
    k = max((i for i, d in enumerate(monitoring[:-1]) if d.year <= 2023), default=0)
    forward_until, update_until = end_of_day(monitoring[k]), end_of_day(monitoring[k + 1])
    start = dt.datetime.combine(HISTORY[0], dt.time(), tzinfo=dt.UTC)
    acquisitions = {
        "fit": listed(archive, start, history_end),
        "forward": listed(archive, history_end, forward_until),
        "update": listed(archive, forward_until, update_until),
    }
    acquisitions["fit_forward"] = acquisitions["fit"] + acquisitions["forward"]
    acquisitions[SERVED] = acquisitions["update"]
    out: dict = {"forward_until": forward_until.isoformat(), "update_until": update_until.isoformat()}
    with storage(kind, archive, work, args.latency_ms / 1000) as (served, catalog):
        remote = replace(archive, catalog_path=catalog)
        base_dir = fresh_dir(work / f"{kind}-baseline")
        nrt_dir = fresh_dir(work / f"{kind}-nrt-alerts")
        config = write_config(nrt_dir, remote, tile_size=args.tile_size)
        snapshot = work / f"{kind}-forwarded" / "output"
        steps = [
            ("baseline", p, baseline_commands(remote, base_dir / "data", p, until), None)
            for p, until in (("fit", None), ("forward", forward_until), ("update", update_until))
        ]
        steps += [
            ("nrt_alerts", "fit_forward", nrt_commands(config, "fit_forward", forward_until), nrt_dir),
            ("nrt_alerts", SERVED, [], nrt_dir),
            ("nrt_alerts", "update", nrt_commands(config, "update", update_until), nrt_dir),
        ]
        # The served update's growing catalog takes its items from the remote catalog's copy (its hrefs remote).
        mirror = replace(archive, root=catalog.parent, catalog_path=catalog)
        for side, phase, commands, cwd in steps:
            served.recorder.reset()
            load = load_average()
            if phase == SERVED:  # from the fast-forwarded state, before the CLI's update moved it
                m = served_update(snapshot, mirror, forward_until, update_until, args.tile_size, "")
            else:
                m = run_measured(commands, cwd=cwd)
            if phase == "fit_forward":
                shutil.copytree(nrt_dir / "output", fresh_dir(snapshot.parent) / "output")
            traffic = served.recorder.traffic.summary()
            n = len(acquisitions[phase])
            entry = {"wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb, "load_average": load, "acquisitions": n}
            entry.update(traffic)
            entry["requests_per_acquisition"] = round(traffic["requests"] / max(1, n), 1)
            entry["mb_per_acquisition"] = round(traffic["bytes"] / max(1, n) / 1e6, 3)
            out.setdefault(side, {})[phase] = entry
            print(f"  {kind} {side} {phase}: {m.wall_s} s, {m.peak_rss_mb} MB, {traffic}", flush=True)
    out["least_per_acquisition"] = least_per_acquisition(acquisitions["fit"][:5])
    base = out["baseline"]
    ours = out["nrt_alerts"]
    out["baseline"]["end_to_end"] = {
        "wall_s": round(sum(base[p]["wall_s"] for p in PHASES), 3),
        "peak_rss_mb": max(base[p]["peak_rss_mb"] for p in PHASES),
    }
    for name, update in (("end_to_end", SERVED), ("end_to_end_cli", "update")):
        out["nrt_alerts"][name] = {
            "wall_s": round(ours["fit_forward"]["wall_s"] + ours[update]["wall_s"], 3),
            "peak_rss_mb": max(ours["fit_forward"]["peak_rss_mb"], ours[update]["peak_rss_mb"]),
        }
    b, n = out["baseline"]["end_to_end"], out["nrt_alerts"]["end_to_end"]
    out["speedup_end_to_end"] = round(b["wall_s"] / n["wall_s"], 2)
    out["memory_ratio"] = round(n["peak_rss_mb"] / b["peak_rss_mb"], 3)
    out["meets_speed_target"] = out["speedup_end_to_end"] >= TARGET_SPEEDUP
    out["meets_memory_target"] = out["memory_ratio"] <= TARGET_MEMORY
    return out


def report(result: dict) -> str:
    """The Markdown summary of a run."""
    s = result["settings"]
    lines = [
        "# Remote reads: nrt-alerts vs nrt's deployment guide, assets on HTTP and S3 (bench/remote_reads.py)",
        "",
        f"Command: `{s['command']}`  ",
        f"Date: {result['date']}; machine: {result['machine']}  ",
        f"Area {s['size']} x {s['size']} px (tiles of {s['tile_size']} px), one acquisition every "
        f"{s['revisit_days']} days, {s['latency_ms']} ms per request on both servers (loopback).  ",
        "Load average (1, 5, 15 min) before each phase is in the JSON; the machine is shared with other sessions.",
        "",
    ]
    for kind in ("http", "s3"):
        r = result[kind]
        least = r["least_per_acquisition"]
        extra_head = ", plus one HEAD per asset" if kind == "http" else ""
        rows = []
        for side in ("baseline", "nrt_alerts"):
            for phase, e in r[side].items():
                if phase.startswith("end_to_end"):
                    continue
                rows.append(
                    [
                        side,
                        phase,
                        e["wall_s"],
                        e["peak_rss_mb"],
                        e["acquisitions"],
                        e["requests"],
                        e["requests_per_acquisition"],
                        e["mb_per_acquisition"],
                        e["max_in_flight"],
                        e["server_cpu_s"],
                        "/".join(f"{x:.1f}" for x in e["load_average"]),
                    ]
                )
        lines += [
            f"## {kind.upper()}",
            "",
            table(
                [
                    "side",
                    "phase",
                    "wall s",
                    "peak RSS MB",
                    "acq.",
                    "requests",
                    "req./acq.",
                    "MB/acq.",
                    "max in flight",
                    "server CPU s",
                    "load",
                ],
                rows,
            ),
            "",
            f"End to end: guide {r['baseline']['end_to_end']['wall_s']} s, "
            f"{r['baseline']['end_to_end']['peak_rss_mb']} MB; nrt-alerts {r['nrt_alerts']['end_to_end']['wall_s']} s, "
            f"{r['nrt_alerts']['end_to_end']['peak_rss_mb']} MB: **{r['speedup_end_to_end']}x faster** (target "
            f"{TARGET_SPEEDUP}x: {'met' if r['meets_speed_target'] else 'NOT met'}), memory ratio "
            f"{r['memory_ratio']} (target <= {TARGET_MEMORY}: {'met' if r['meets_memory_target'] else 'NOT met'}).  ",
            f"The least per acquisition (3 assets: each one's 16 KB header and every block of the area): "
            f"{least['mb']} MB, in {least['requests_by_block']:.0f} requests (one per block) or "
            f"{least['requests_merged']:.0f} (header, then all blocks in one range){extra_head}.",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000, help="Area width and height in px (default 1000)")
    p.add_argument("--tile-size", type=int, default=512, help="nrt-alerts' tile size (default 512)")
    p.add_argument("--revisit-days", type=int, default=10, help="Days between acquisitions (default 10)")
    p.add_argument("--latency-ms", type=float, default=40.0, help="Wait before each answer (default 40 ms)")
    p.add_argument("--only", choices=["http", "s3"], help="One storage only")
    args = p.parse_args()
    if args.smoke:
        args.size, args.tile_size = 64, 32
    work = args.work / "remote-reads"
    archive = demo(args.work, args.size, args.revisit_days, args.smoke)
    result: dict = {
        "benchmark": "remote_reads",
        "date": now_iso(),
        "machine": machine(),
        "settings": {
            "command": " ".join(["python", *sys.argv]),
            "size": args.size,
            "tile_size": args.tile_size,
            "revisit_days": args.revisit_days,
            "latency_ms": args.latency_ms,
            "read_concurrency": "default (32)",
        },
    }
    for kind in [args.only] if args.only else ["http", "s3"]:
        result[kind] = run_storage(kind, archive, fresh_dir(work / kind), args)
    if args.smoke:
        print(json.dumps(result, indent=1))
        return 0
    write_result(args.results, "remote_reads", result)
    write_report(args.results)
    return 0


def write_report(results: Path) -> None:
    """bench/results/remote_reads.md from the JSON results."""
    result = json.loads((results / "remote_reads.json").read_text(encoding="utf-8"))
    if "http" in result and "s3" in result:
        (results / "remote_reads.md").write_text(report(result) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
