"""Serving: the same published COG from stock TiTiler (`?url=`) and from our named layer and WMS.

    python bench/serving.py [--quick | --smoke] [--repeats N] [--concurrency 8] [--duration 20]

Both servers run under uvicorn with the same settings (1 process, uvloop, httptools, no access log) on
127.0.0.1, pinned to CPU 0; the load generator (httpx async, N concurrent requests, bounded duration and request
count) runs in this process pinned to CPU 1, so it does not take the server's core. Scenarios:
- tiles: distinct XYZ tiles (z12-z15 over the area), no validators: every request renders;
- wms: the same tiles' bounding boxes as 256 x 256 EPSG:3857 PNG, our WMS GetMap against stock's /bbox;
- repeated: 32 tiles requested again and again with the If-None-Match of their first response, as a browser
  revalidates; our ETags answer 304 without rendering, stock TiTiler has no validators and renders each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import morecantile
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH,
    base_parser,
    child_env,
    free_port,
    load_average,
    mode_of,
    stats,
    table,
    wait_http,
    write_result,
)

DURATION = {"full": 20.0, "quick": 8.0, "smoke": 1.0}
REPEATS = {"full": 2, "quick": 1, "smoke": 1}
MAX_REQUESTS = 20000
ZOOMS = {"full": [12, 13, 14, 15], "quick": [12, 13, 14, 15], "smoke": [15, 16]}
REPEATED_TILES = 32
TARGET_UNCACHED, TARGET_CACHED = 0.9, 5.0
TMS = morecantile.tms.get("WebMercatorQuad")
SERVER_PIDS: dict[str, int] = {}


def cpus() -> tuple[set[int], set[int]]:
    """Server CPUs and load-generator CPUs: split the machine in two (everything shared on one core)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    half = len(available) // 2
    return set(available[:half]), set(available[half:])


@contextlib.contextmanager
def server(target: str, *, factory: bool, env: dict[str, str], server_cpus: set[int]) -> Iterator[str]:
    """A uvicorn server on 127.0.0.1 pinned to server_cpus; yields its base URL."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        *(["--factory"] if factory else []),
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(
        cmd,
        env={**child_env(), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, server_cpus),
    )
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base] = proc.pid
    try:
        wait_http(f"{base}/docs")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _requests(urls: list[str], headers: list[dict]) -> tuple[str, int, list[bytes]]:
    """Each request as the bytes of an HTTP/1.1 keep-alive GET (built once, so the generator stays cheap)."""
    parsed = urlsplit(urls[0])
    host, port = parsed.hostname, parsed.port
    out = []
    for url, extra in zip(urls, headers, strict=True):
        u = urlsplit(url)
        target = u.path + (f"?{u.query}" if u.query else "")
        # Accept as httpx sends it: the ETags of the first responses were computed with it (it is part of them).
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Accept: */*"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return host, port, out


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked body); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if status in (204, 304) or status < 200:
        return status
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return status
    start = lower.find(b"content-length:")
    length = int(lower[start + 15 : lower.find(b"\r\n", start)]) if start >= 0 else 0
    await reader.readexactly(length)
    return status


async def _load(urls: list[str], headers: list[dict], duration: float, concurrency: int) -> dict:
    """Fire the URLs round-robin over `concurrency` keep-alive connections until the duration or budget is spent.

    A minimal asyncio HTTP/1.1 client: an httpx request costs 1-2 ms of the generator's CPU, which capped
    the rate of cheap responses (304s) well below what the server could answer.
    """
    host, port, requests = _requests(urls, headers)
    latencies: list[float] = []
    statuses: Counter = Counter()
    order = itertools.cycle(range(len(urls)))
    started = time.perf_counter()
    deadline = started + duration
    sent = 0

    async def worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and sent < MAX_REQUESTS:
                sent += 1
                i = next(order)
                t = time.perf_counter()
                writer.write(requests[i])
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t)
                statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def run_load(urls: list[str], headers: list[dict] | None, duration: float, concurrency: int) -> dict:
    """The load generator, in this (load-generator-pinned) process."""
    return asyncio.run(_load(urls, headers or [{}] * len(urls), duration, concurrency))


def area_tiles(cog: Path, zooms: list[int]) -> list[morecantile.Tile]:
    """Every WebMercatorQuad tile of the zooms whose centre lies inside the COG."""
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(cog) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    tiles = []
    candidates = list(TMS.tiles(west, south, east, north, zooms))
    for tile in candidates:
        b = TMS.bounds(tile)
        cx, cy = (b.left + b.right) / 2, (b.bottom + b.top) / 2
        if west <= cx <= east and south <= cy <= north:
            tiles.append(tile)
    return tiles or candidates


def latest_status_cog(stac_dir: Path) -> Path:
    """The status COG of the latest publication's first item."""
    from catalog.store import CatalogLayout, read_index

    latest = read_index(CatalogLayout(stac_dir)).latest
    item_id = sorted(latest.items.values())[0]
    return stac_dir / "alerts" / "items" / item_id / f"{item_id}_status.tif"


def stock_colormap() -> str:
    """Our `alerts` style as a JSON colormap query value, so stock TiTiler renders the same pixels."""
    import json
    from urllib.parse import quote

    from catalog.encoding import status_colormap

    visible = {str(k): list(v) for k, v in status_colormap().items() if v[3] > 0}
    return quote(json.dumps(visible, separators=(",", ":")))


def scenario_urls(base: str, side: str, cog: Path, tiles: list[morecantile.Tile], kind: str) -> list[str]:
    """The request URLs of a scenario for one server."""
    urls = []
    cmap = stock_colormap()
    for t in tiles:
        if kind in ("tiles", "repeated"):
            if side == "stock":
                urls.append(f"{base}/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?url={cog}&colormap={cmap}")
            else:
                urls.append(f"{base}/layers/alerts/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png")
        else:
            b = TMS.xy_bounds(t)
            bbox = f"{b.left},{b.bottom},{b.right},{b.top}"
            if side == "stock":
                urls.append(
                    f"{base}/cog/bbox/{bbox}/256x256.png?url={cog}&coord_crs=EPSG:3857&dst_crs=EPSG:3857&colormap={cmap}"
                )
            else:
                urls.append(
                    f"{base}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=alerts&STYLES=&CRS=EPSG:3857"
                    f"&BBOX={bbox}&WIDTH=256&HEIGHT=256&FORMAT=image/png&TRANSPARENT=TRUE"
                )
    return urls


def measure_side(side: str, base: str, cog: Path, tiles, repeated, duration: float, concurrency: int) -> dict:
    """Every scenario against one running server."""
    out = {}
    with httpx.Client(timeout=60.0) as client:
        for url in scenario_urls(base, side, cog, tiles[:8], "tiles"):  # warm up: imports, GDAL open, caches
            r = client.get(url)
            if r.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:300]}")
        for kind, kind_tiles in (("tiles", tiles), ("wms", tiles)):
            out[kind] = with_server_cpu(
                base,
                lambda k=kind, t=kind_tiles: run_load(
                    scenario_urls(base, side, cog, t, k), None, duration, concurrency
                ),
            )
        urls = scenario_urls(base, side, cog, repeated, "repeated")
        headers = []
        for url in urls:
            etag = client.get(url).headers.get("etag")
            headers.append({"If-None-Match": etag} if etag else {})
        out["repeated"] = with_server_cpu(base, lambda: run_load(urls, headers, duration, concurrency))
        out["repeated"]["etags"] = sum(1 for h in headers if h)
    return out


def with_server_cpu(base: str, measure) -> dict:
    """Add the server's CPU time per request: unlike req/s, it hardly depends on what else the machine runs."""
    import psutil

    proc = psutil.Process(SERVER_PIDS[base])
    before = proc.cpu_times()
    out = measure()
    after = proc.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    out["server_cpu_ms_per_request"] = cpu * 1000 / max(out["requests"], 1)
    return out


def same_rendering(stock: str, ours: str, cog: Path, tile: morecantile.Tile) -> bool:
    """Whether both servers return the same PNG pixels for a tile (they should: same COG, same palette)."""
    from io import BytesIO

    from PIL import Image

    a = httpx.get(scenario_urls(stock, "stock", cog, [tile], "tiles")[0], timeout=60).content
    b = httpx.get(scenario_urls(ours, "ours", cog, [tile], "tiles")[0], timeout=60).content
    return np.array_equal(
        np.asarray(Image.open(BytesIO(a)).convert("RGBA")), np.asarray(Image.open(BytesIO(b)).convert("RGBA"))
    )


def main() -> int:
    from scheduler.config import load_config

    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=None, help="Seconds per scenario and server")
    args = p.parse_args()
    mode = mode_of(args)
    duration = args.duration or DURATION[mode]
    repeats = args.repeats or REPEATS[mode]

    from common import standard_deployment

    _, config, _, _ = standard_deployment(args.work, mode == "smoke")
    cfg = load_config(config)
    stac_dir = cfg.output.stac_dir.resolve()
    cog = latest_status_cog(stac_dir)
    tiles = area_tiles(cog, ZOOMS[mode])
    z14 = [t for t in tiles if t.z == 14] or tiles
    repeated = z14[:REPEATED_TILES]
    server_cpus, load_cpus = cpus()
    os.sched_setaffinity(0, load_cpus)
    env = {"NRT_ALERTS_SERVER_STAC_DIR": str(stac_dir)}

    runs: dict[str, dict[str, list[dict]]] = {"stock": {}, "ours": {}}
    loads = []
    parity = None
    for r in range(repeats):
        # Both servers up (an idle one costs nothing); measured one after the other, in alternating order.
        with (
            server("stock_app:app", factory=False, env=env, server_cpus=server_cpus) as stock,
            server("server.app:create_app", factory=True, env=env, server_cpus=server_cpus) as ours,
        ):
            bases = {"stock": stock, "ours": ours}
            if parity is None:
                parity = same_rendering(stock, ours, cog, repeated[0])
            for side in ["stock", "ours"] if r % 2 == 0 else ["ours", "stock"]:
                loads.append(load_average())
                for kind, m in measure_side(
                    side, bases[side], cog, tiles, repeated, duration, args.concurrency
                ).items():
                    runs[side].setdefault(kind, []).append(m)
                    print(f"  repeat {r + 1} {side:5} {kind:8} {m['rps']:8.1f} req/s p50 {m['p50_ms']:.1f} ms")

    result: dict = {
        "settings": {
            "mode": mode,
            "repeats": repeats,
            "duration_s": duration,
            "concurrency": args.concurrency,
            "max_requests": MAX_REQUESTS,
            "server_cpus": sorted(server_cpus),
            "load_generator_cpus": sorted(load_cpus),
            "uvicorn": "1 worker, uvloop, httptools, log-level warning, no access log, 127.0.0.1",
        },
        "cog": str(cog),
        "distinct_tiles": len(tiles),
        "repeated_tiles": len(repeated),
        "same_rendering": parity,
        "load_average": loads,
        "scenarios": {},
    }
    rows = []
    for kind in ("tiles", "wms", "repeated"):
        entry = {}
        for side in ("stock", "ours"):
            ms = runs[side][kind]
            entry[side] = {
                "rps": stats([m["rps"] for m in ms]),
                "p50_ms": stats([m["p50_ms"] for m in ms]),
                "p99_ms": stats([m["p99_ms"] for m in ms]),
                "server_cpu_ms_per_request": stats([m["server_cpu_ms_per_request"] for m in ms]),
                "runs": ms,
            }
        ratio = entry["ours"]["rps"]["median"] / entry["stock"]["rps"]["median"]
        entry["ratio_rps"] = round(ratio, 3)
        cpu = entry["ours"]["server_cpu_ms_per_request"]["median"]
        entry["ratio_cpu_per_request"] = round(
            entry["stock"]["server_cpu_ms_per_request"]["median"] / max(cpu, 1e-9), 3
        )
        entry["target"] = TARGET_CACHED if kind == "repeated" else TARGET_UNCACHED
        entry["meets_target"] = ratio >= entry["target"]
        result["scenarios"][kind] = entry
        for side in ("stock", "ours"):
            e = entry[side]
            rows.append(
                [
                    kind,
                    side,
                    e["rps"]["median"],
                    e["p50_ms"]["median"],
                    e["p99_ms"]["median"],
                    e["server_cpu_ms_per_request"]["median"],
                    ratio if side == "ours" else "",
                    entry["ratio_cpu_per_request"] if side == "ours" else "",
                ]
            )
    write_result(args.results, "serving", result)
    print(
        table(
            ["scenario", "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "rps ours/stock", "CPU stock/ours"], rows
        )
    )
    print(f"same rendering: {parity}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
