"""Print the summary table of every benchmark result, each against its target.

python bench/summary.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_RESULTS, table  # noqa: E402


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows(results: Path) -> list[list]:
    """One row per measured quantity: value, target, verdict, load average during the run."""
    out = []
    if vs := _load(results, "pipeline_vs_baseline"):
        for s in vs["sizes"]:
            area = f"{s['width']}x{s['height']}"
            load = max(x[0] for x in s["load_average"])
            b, n = s["baseline"]["end_to_end"], s["nrt_alerts"]["end_to_end"]
            out.append(
                [
                    f"vs baseline {area}: end-to-end speed-up",
                    f"{s['speedup_end_to_end']:.2f}x ({b['wall_s']['median']:.0f} s / {n['wall_s']['median']:.0f} s)",
                    ">= 3x",
                    _verdict(s["meets_speed_target"]),
                    load,
                ]
            )
            out.append(
                [
                    f"vs baseline {area}: peak memory ratio",
                    f"{s['memory_ratio']:.2f} ({n['peak_rss_mb']['median']:.0f} / {b['peak_rss_mb']['median']:.0f} MB)",
                    "<= 0.25",
                    _verdict(s["meets_memory_target"]),
                    load,
                ]
            )
    if lim := _load(results, "limit"):
        ns, ratio = lim["ns_per_pixel_per_acquisition"], lim["ratio_to_floor"]
        load = max(x[0] for x in lim["load_average"])
        for step in ("absorb", "update_step"):
            out.append(
                [
                    f"limit: {step} per pixel per acquisition",
                    f"{ns[step]:.0f} ns = {ratio[step]:.0f}x the copy floor ({ns['floor_copy']:.1f} ns)",
                    "report",
                    "-",
                    load,
                ]
            )
    if srv := _load(results, "serving"):
        load = max(x[0] for x in srv["load_average"])
        for kind, label in (("tiles", "XYZ tiles"), ("wms", "WMS GetMap"), ("repeated", "repeated tiles, ETag")):
            e = srv["scenarios"][kind]
            ours, stock = e["ours"], e["stock"]
            out.append(
                [
                    f"serving: {label} vs stock TiTiler",
                    f"{e['ratio_rps']:.2f}x ({ours['rps']['median']:.0f} / {stock['rps']['median']:.0f} req/s,"
                    f" p99 {ours['p99_ms']['median']:.0f} / {stock['p99_ms']['median']:.0f} ms;"
                    f" CPU per request stock/ours {e.get('ratio_cpu_per_request', float('nan')):.2f}x)",
                    f">= {e['target']}x",
                    _verdict(e["meets_target"]),
                    load,
                ]
            )
    if fr := _load(results, "freshness"):
        load = max(x[0] for x in fr["load_average"])
        lat = fr["latency_s"]
        out.append(
            [
                f"freshness {fr['tile_px'][0]}x{fr['tile_px'][1]} tile",
                f"median {lat['median']:.1f} s, max {lat['max']:.1f} s (interval {fr['settings']['interval_s']:.0f} s)",
                f"<= {fr['target_s']:.0f} s + interval",
                _verdict(fr["meets_target"]),
                load,
            ]
        )
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = p.parse_args()
    print(table(["benchmark", "measured (median)", "target", "verdict", "max load"], rows(args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
