"""Load during publication: many tile and WMS clients on loopback while a new publication lands.

    python bench/load_publication.py                 # about 45 s of load (at most 60 s), plus ~30 s of setup

Starts `nrt-alerts serve --no-scheduler` on a demo catalog (fitted, updated to 2024-01-01), runs concurrent
clients fetching XYZ tiles of the latest `alerts` layer and WMS GetMap, and meanwhile runs `nrt-alerts update`
up to 2024-03-15, which publishes a version whose pixels differ from the old one's in every requested image
(first detections come and go on ~1 % of forest pixels per date, shown by the `alerts-all` style; clear-cuts of
2024 appear). It checks that no response is a 5xx and that every image equals exactly one of the two versions'
reference renderings, and writes p50/p99/requests/errors to bench/results/load_publication.json.
Loopback only; the request count and the duration are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import morecantile
import numpy as np
from PIL import Image
from pyproj import Transformer

REPO = Path(__file__).resolve().parent.parent
OLD_UNTIL = "2024-01-01"
NEW_UNTIL = "2024-03-15"
MAX_DURATION_S = 60.0
TMS = morecantile.tms.get("WebMercatorQuad")
if str(REPO) not in sys.path:  # the project's modules (imported where used) come from this checkout
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Request:
    """One image request the clients repeat: a kind (tile or wms), a path and its query."""

    kind: str
    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """A readable name for reports."""
        return f"{self.path}?{'&'.join(f'{k}={v}' for k, v in self.params)}"


@dataclass
class LoadResult:
    """What the load run measured and found."""

    clients: int
    duration_s: float
    requests: int
    errors: int
    status_5xx: int
    p50_ms: float
    p99_ms: float
    by_kind: dict[str, dict[str, float]]
    distinct_images: int
    old_version: str
    new_version: str
    publication_started_s: float
    publication_visible_s: float | None
    images_old: int
    images_new: int
    images_mixed: int
    unchanged_requests: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    mixed_samples: list[str] = field(default_factory=list)
    max_requests: int = 0

    @property
    def problems(self) -> list[str]:
        """Why the run fails its invariants (empty when it passes)."""
        found = []
        if self.status_5xx:
            found.append(f"{self.status_5xx} responses were 5xx")
        if self.errors:
            found.append(f"{self.errors} requests failed: {self.error_samples[:3]}")
        if self.images_mixed:
            found.append(f"{self.images_mixed} images equal neither version's rendering: {self.mixed_samples[:3]}")
        if self.unchanged_requests:
            found.append(f"requests whose image did not change between versions: {self.unchanged_requests[:3]}")
        if self.publication_visible_s is None:
            found.append("the new publication never became visible during the load")
        if not self.images_old or not self.images_new:
            found.append(f"clients saw only one version (old {self.images_old}, new {self.images_new})")
        return found


# --- preparation --------------------------------------------------------------------------------------------


def prepare(root: Path, width: int = 256, height: int = 256, archive: Path | None = None) -> Path:
    """A demo deployment in `root` (a new archive, or a link to `archive`), fitted and updated to OLD_UNTIL."""
    from scheduler.config import load_config
    from scheduler.demo import DemoSpec, generate_demo
    from scheduler.demo_setup import write_demo_config
    from scheduler.pipeline import Pipeline

    spec = DemoSpec(width=width, height=height)
    root.mkdir(parents=True, exist_ok=True)
    if archive is None:  # beside the deployment, linked: a copy of the deployment stays small
        archive = generate_demo(root.parent / f"{root.name}-archive", spec).root
    if not (root / "archive").exists():
        (root / "archive").symlink_to(archive, target_is_directory=True)
    config = write_demo_config(root, spec, tile_size=128)
    pipeline = Pipeline(load_config(config))
    pipeline.run_fit()
    pipeline.run_update(until(OLD_UNTIL))
    return config


def until(day: str) -> dt.datetime:
    """The end of a day, as `nrt-alerts update --until DAY` reads it."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.max, tzinfo=dt.UTC)


def image_requests(config: Path) -> list[Request]:
    """XYZ tiles covering the area at two zooms and WMS GetMaps of the area and its quarters."""
    from scheduler.config import load_config

    area = load_config(config).area
    minx, miny, maxx, maxy = area.bounds
    to_lonlat = Transformer.from_crs(area.crs, "EPSG:4326", always_xy=True)
    to_merc = Transformer.from_crs(area.crs, "EPSG:3857", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(minx, miny, maxx, maxy)
    requests = []
    for zoom in (14, 15):
        for tile in TMS.tiles(west, south, east, north, [zoom]):
            # Tiles that only graze the area have few pixels that could change: keep those mostly inside.
            b = TMS.bounds(tile)
            overlap = max(0, min(b.right, east) - max(b.left, west)) * max(0, min(b.top, north) - max(b.bottom, south))
            if overlap >= 0.25 * (b.right - b.left) * (b.top - b.bottom):
                path = f"/layers/alerts/tiles/WebMercatorQuad/{zoom}/{tile.x}/{tile.y}.png"
                requests.append(Request("tile", path, (("colormap_name", "alerts-all"),)))
    mx0, my0, mx1, my1 = to_merc.transform_bounds(minx, miny, maxx, maxy)
    boxes = [(mx0, my0, mx1, my1)]
    cx, cy = (mx0 + mx1) / 2, (my0 + my1) / 2
    boxes += [(mx0, my0, cx, cy), (cx, my0, mx1, cy), (mx0, cy, cx, my1), (cx, cy, mx1, my1)]
    for i, (a, b, c, d) in enumerate(boxes):
        size = "512" if i == 0 else "256"
        params = (
            ("SERVICE", "WMS"),
            ("VERSION", "1.3.0"),
            ("REQUEST", "GetMap"),
            ("LAYERS", "alerts"),
            ("STYLES", "alerts-all"),
            ("CRS", "EPSG:3857"),
            ("BBOX", f"{a:.3f},{b:.3f},{c:.3f},{d:.3f}"),
            ("WIDTH", size),
            ("HEIGHT", size),
            ("FORMAT", "image/png"),
            ("TRANSPARENT", "TRUE"),
        )
        requests.append(Request("wms", "/wms", params))
    return requests


def changing_requests(config: Path, requests: list[Request]) -> list[Request]:
    """The requests whose image differs between the current and the next version, found on a copy of the
    deployment (the pipeline is deterministic, so the real update publishes the same pixels)."""
    from fastapi.testclient import TestClient

    from scheduler.config import load_config
    from scheduler.pipeline import Pipeline
    from server.app import create_app
    from server.settings import ServerSettings

    with tempfile.TemporaryDirectory(prefix="load-publication-probe-") as tmp:
        copy = Path(tmp) / "ws"
        shutil.copytree(config.parent, copy, symlinks=True)
        app = create_app(ServerSettings(stac_dir=load_config(copy / config.name).output.stac_dir))
        with TestClient(app) as client:
            before = [fetch(client, "", r) for r in requests]
            Pipeline(load_config(copy / config.name)).run_update(until(NEW_UNTIL))
            after = [fetch(client, "", r) for r in requests]
    return [r for r, a, b in zip(requests, before, after, strict=True) if not np.array_equal(a, b)]


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    """The `nrt-alerts` command line, run from this checkout."""
    return [sys.executable, "-m", "server", "--log-level", "warning", *args]


def environment() -> dict[str, str]:
    """This checkout first on the path, so subprocesses run the code under test."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


@contextlib.contextmanager
def server(config: Path, log: Path) -> Iterator[str]:
    """`nrt-alerts serve --no-scheduler` on a loopback port; its base URL."""
    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            cli("serve", "-c", str(config), "--no-scheduler", "--host", "127.0.0.1", "--port", str(port)),
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def decode(content: bytes) -> np.ndarray:
    """An image response as RGBA pixels."""
    with Image.open(io.BytesIO(content)) as img:
        return np.asarray(img.convert("RGBA"))


def fetch(client: httpx.Client, url: str, request: Request) -> np.ndarray:  # or a TestClient
    """One reference rendering (sequential, outside the load)."""
    response = client.get(f"{url}{request.path}", params=list(request.params))
    if response.status_code != 200:
        raise RuntimeError(f"reference {request.label}: {response.status_code} {response.text[:200]}")
    return decode(response.content)


def latest_version(url: str) -> str | None:
    """The latest publication the server shows."""
    versions = httpx.get(f"{url}/layers", timeout=30).json()[0]["versions"]
    return versions[-1] if versions else None


# --- the load -----------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One response the clients got."""

    request: int
    status: int
    seconds: float
    content: bytes | None
    error: str | None = None


async def clients(
    url: str, requests: list[Request], n_clients: int, max_requests: int, stop: threading.Event
) -> list[Sample]:
    """`n_clients` concurrent clients cycling through the requests until `stop` or `max_requests`."""
    samples: list[Sample] = []
    counter = iter(range(max_requests))
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)

    async def client(offset: int, http: httpx.AsyncClient) -> None:
        for n in counter:
            if stop.is_set():
                return
            i = (offset + n) % len(requests)
            request = requests[i]
            started = time.perf_counter()
            try:
                response = await http.get(f"{url}{request.path}", params=list(request.params))
                elapsed = time.perf_counter() - started
                samples.append(Sample(i, response.status_code, elapsed, response.content))
            except httpx.HTTPError as exc:
                samples.append(Sample(i, 0, time.perf_counter() - started, None, f"{type(exc).__name__}: {exc}"))

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(k * 7, http) for k in range(n_clients)))
    return samples


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) in milliseconds, 0 without values."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values) * 1000, q))


def run_load(
    config: Path,
    *,
    duration_s: float = 45.0,
    n_clients: int = 32,
    max_requests: int = 20_000,
    publish_after_s: float = 8.0,
    tail_s: float = 5.0,
    workdir: Path | None = None,
    requests: list[Request] | None = None,
) -> LoadResult:
    """Serve `config`'s catalog, load it, land a new publication meanwhile, and check every image."""
    duration_s = min(duration_s, MAX_DURATION_S)
    workdir = workdir or config.parent
    requests = requests or changing_requests(config, image_requests(config))
    with server(config, workdir / "server.log") as url, httpx.Client(timeout=60) as http:
        old_version = latest_version(url)
        old_refs = [fetch(http, url, r) for r in requests]
        stop = threading.Event()
        result: dict[str, list[Sample]] = {}

        def load_body() -> None:
            result["samples"] = asyncio.run(clients(url, requests, n_clients, max_requests, stop))

        load = threading.Thread(target=load_body)
        started = time.monotonic()
        load.start()
        time.sleep(publish_after_s)
        publication_started = time.monotonic() - started
        update = subprocess.run(
            cli("update", "-c", str(config), "--until", NEW_UNTIL),
            env=environment(),
            capture_output=True,
            text=True,
            timeout=MAX_DURATION_S,
        )
        if update.returncode != 0:
            stop.set()
            load.join()
            raise RuntimeError(f"nrt-alerts update failed: {update.stderr[-2000:]}")
        new_version = latest_version(url)
        visible = time.monotonic() - started if new_version != old_version else None
        # Keep loading a little after the switch, within the duration and the hard limit.
        # (A second is left for the requests in flight, so the whole load stays within the limit.)
        end = min(started + MAX_DURATION_S - 1, max(started + duration_s, time.monotonic() + tail_s))
        while load.is_alive() and time.monotonic() < end:
            time.sleep(0.1)
        stop.set()
        load.join()
        elapsed = time.monotonic() - started
        new_refs = [fetch(http, url, r) for r in requests]
    samples = result["samples"]
    return judge(
        requests,
        samples,
        old_refs,
        new_refs,
        n_clients=n_clients,
        max_requests=max_requests,
        elapsed=elapsed,
        versions=(old_version or "", new_version or ""),
        publication=(publication_started, visible),
    )


def judge(
    requests: list[Request],
    samples: list[Sample],
    old_refs: list[np.ndarray],
    new_refs: list[np.ndarray],
    *,
    n_clients: int,
    max_requests: int,
    elapsed: float,
    versions: tuple[str, str],
    publication: tuple[float, float | None],
) -> LoadResult:
    """Compare every image with the two references and summarise latencies and errors."""
    unchanged = [r.label for r, a, b in zip(requests, old_refs, new_refs, strict=True) if np.array_equal(a, b)]
    old = new = mixed = 0
    mixed_samples: list[str] = []
    decoded: dict[bytes, str] = {}  # identical bodies are decoded and judged once
    errors = [s for s in samples if s.status != 200]
    for s in samples:
        if s.status != 200 or s.content is None:
            continue
        verdict = decoded.get(s.content)
        if verdict is None:
            pixels = decode(s.content)
            is_old = np.array_equal(pixels, old_refs[s.request])
            is_new = np.array_equal(pixels, new_refs[s.request])
            verdict = "both" if is_old and is_new else "old" if is_old else "new" if is_new else "mixed"
            decoded[s.content] = verdict
        old += verdict == "old"
        new += verdict == "new"
        mixed += verdict == "mixed"
        if verdict == "mixed" and len(mixed_samples) < 10:
            mixed_samples.append(requests[s.request].label)
    by_kind = {}
    for kind in ("tile", "wms"):
        times = [s.seconds for s in samples if requests[s.request].kind == kind and s.status == 200]
        by_kind[kind] = {"requests": len(times), "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}
    ok_times = [s.seconds for s in samples if s.status == 200]
    return LoadResult(
        clients=n_clients,
        duration_s=round(elapsed, 1),
        requests=len(samples),
        errors=len(errors),
        status_5xx=sum(1 for s in samples if s.status >= 500),
        p50_ms=round(percentile(ok_times, 50), 1),
        p99_ms=round(percentile(ok_times, 99), 1),
        by_kind={k: {m: round(v, 1) for m, v in d.items()} for k, d in by_kind.items()},
        distinct_images=len(requests),
        old_version=versions[0],
        new_version=versions[1],
        publication_started_s=round(publication[0], 1),
        publication_visible_s=None if publication[1] is None else round(publication[1], 1),
        images_old=old,
        images_new=new,
        images_mixed=mixed,
        unchanged_requests=unchanged,
        error_samples=[s.error or f"{s.status} {requests[s.request].label}" for s in errors[:10]],
        mixed_samples=mixed_samples,
        max_requests=max_requests,
    )


def main(argv: list[str] | None = None) -> int:
    """Prepare, load, check, and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=45.0, help="Seconds of load (at most 60)")
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Upper bound on requests")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_publication.json")
    args = parser.parse_args(argv)
    load_before = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="load-publication-") as tmp:
        t0 = time.monotonic()
        config = prepare(Path(tmp))
        setup = time.monotonic() - t0
        result = run_load(config, duration_s=args.duration, n_clients=args.clients, max_requests=args.max_requests)
    record = {
        "benchmark": "load during publication",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # The load average says how busy the machine already was: other work inflates every latency.
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average_1min": load_before},
        "setup_s": round(setup, 1),
        **asdict(result),
        "passed": not result.problems,
        "problems": result.problems,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    sys.stdout.write(
        f"{result.requests} requests by {result.clients} clients in {result.duration_s} s: "
        f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, {result.errors} errors, {result.status_5xx} 5xx; "
        f"images old {result.images_old} / new {result.images_new} / mixed {result.images_mixed}; "
        f"publication {result.old_version} -> {result.new_version} visible at {result.publication_visible_s} s\n"
    )
    for problem in result.problems:
        sys.stdout.write(f"FAIL: {problem}\n")
    sys.stdout.write(f"written to {args.out}\n")
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
