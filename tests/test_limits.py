"""Every parameter that sizes work has a limit: the OpenAPI walk at and beyond each, bodies, the time budget, the
zoom range of TileJSON and empty tiles outside the data."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from server.app import create_app
from server.limits import BudgetMiddleware, Limits
from server.settings import ServerSettings

from conftest import DemoRun, free_port, serving

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits()
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
# Peak memory the whole walk may add to the idle server: a request at its limits needs some tens of MB; the
# operator's reports grew it by 1.6 to 19 GB (a walk takes some 25 MB).
RSS_GROWTH_BOUND_MB = 256
# Parameters that are numbers but size no work (coordinates, tile indexes, values): a new sizing parameter in
# the OpenAPI document is neither here nor bounded, and fails test_every_sizing_parameter_is_bounded.
NOT_SIZING = {"lon", "lat", "x", "y", "nodata", "c", "p", "bidx"}


@dataclass(frozen=True)
class Server:
    """The app in its own process, so its memory is its own."""

    url: str
    pid: int

    def memory_mb(self, field: str) -> float:
        """VmRSS (now) or VmHWM (peak) of the server process, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")


@pytest.fixture(scope="module")
def server(static_run: DemoRun) -> Iterator[Server]:
    """`uvicorn --factory server.app:create_app` on the static run's catalog, with the default limits."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NRT_ALERTS_SERVER_")},
        "NRT_ALERTS_SERVER_STAC_DIR": str(static_run.cfg.output.stac_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app", "--port", str(port)]
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--log-level", "warning"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield Server(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def area(url: str) -> tuple[float, float, dict]:
    """Centre (lon, lat) of the published area, and the TileJSON."""
    tilejson = httpx.get(f"{url}/layers/alerts/WebMercatorQuad/tilejson.json", timeout=30).json()
    west, south, east, north = tilejson["bounds"]
    return (west + east) / 2, (south + north) / 2, tilejson


def polygon(lon: float, lat: float, half: float = 0.005) -> dict:
    """A small square Feature around lon/lat."""
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}


def numeric_schemas(param: dict) -> list[dict]:
    """The number/integer schemas of a parameter (also inside anyOf with null)."""
    schema = param.get("schema", {})
    return [s for s in schema.get("anyOf", [schema]) if s.get("type") in ("integer", "number")]


def bounded(param: dict) -> tuple[float | None, float] | None:
    """(minimum, maximum) the schema documents for a parameter, or None; histogram_bins is a string of counts."""
    if param["name"] == "histogram_bins":
        return 1, LIMITS.max_histogram_bins
    for schema in numeric_schemas(param):
        if "maximum" in schema:
            return schema.get("minimum"), schema["maximum"]
    return None


@dataclass
class Call:
    """One request of the walk."""

    method: str
    path: str
    params: dict[str, Any]
    body: dict | None


def operations(schema: dict) -> Iterator[tuple[str, str, dict]]:
    """(method, path, operation) of the document, without the WMS (its own limits, OGC errors) and admin."""
    for path, ops in schema["paths"].items():
        if path.startswith(("/wms", "/admin")):
            continue
        for method, op in ops.items():
            yield method.upper(), path, op


def base_call(method: str, path: str, lon: float, lat: float, z: int = 14) -> Call:
    """A valid request of an operation: the alerts layer, a tile (inside the area up to zoom 30) and a point."""
    x, y = (WEB_MERCATOR.tile(lon, lat, z)[:2]) if 0 <= z <= 30 else (0, 0)
    values = {
        "layer": "alerts",
        "tileMatrixSetId": "WebMercatorQuad",
        "z": z,
        "x": x,
        "y": y,
        "format": "png",
        "lon": lon,
        "lat": lat,
    }
    filled = path
    for name, value in values.items():
        filled = filled.replace(f"{{{name}}}", str(value))
    return Call(method, filled, {}, polygon(lon, lat) if method == "POST" else None)


def with_value(call: Call, path: str, name: str, value: float, lon: float, lat: float) -> Call:
    """The call with `name` set to `value` (a path's z moves the tile; width and height come together)."""
    if name == "z":
        return base_call(call.method, path, lon, lat, z=int(value))
    params = {name: value}
    partner = {"width": "height", "height": "width"}.get(name)
    if partner:
        params[partner] = 1
    return Call(call.method, call.path, params, call.body)


def send(url: str, call: Call) -> httpx.Response:
    """Send one call of the walk."""
    return httpx.request(call.method, f"{url}{call.path}", params=call.params, json=call.body, timeout=120)


def as_number(value: float) -> int | float:
    """Whole values as ints in the query."""
    return int(value) if float(value).is_integer() else value


@pytest.mark.slow
def test_every_sizing_parameter_is_bounded(server: Server) -> None:
    """Every numeric parameter of the document is either bounded (minimum/maximum shown) or sizes no work."""
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    unbounded = set()
    seen = set()
    for method, path, op in operations(schema):
        for param in op.get("parameters", []):
            seen.add(param["name"])
            if numeric_schemas(param) and bounded(param) is None and param["name"] not in NOT_SIZING:
                unbounded.add(f"{method} {path} {param['name']}")
    assert not unbounded
    # The parameters of the operator's report are there, so the walk below reaches them.
    assert {"width", "height", "max_size", "tilesize", "buffer", "padding", "histogram_bins", "cover_scale"} <= seen


@pytest.mark.slow
def test_openapi_walk_each_limit_answers_and_beyond_is_refused(server: Server) -> None:
    """Each bounded parameter at its limits answers 200; far beyond (and below 1 where 0 means unbounded), a 4xx
    naming the parameter; the server's peak memory stays bounded through the whole walk."""
    lon, lat, _ = area(server.url)
    assert httpx.get(f"{server.url}/layers/alerts/tiles/WebMercatorQuad/14/0/0.png", timeout=30).status_code == 200
    idle_mb = server.memory_mb("VmRSS")
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    walked = []
    for method, path, op in operations(schema):
        call = base_call(method, path, lon, lat)
        for param in op.get("parameters", []):
            if param["name"] in NOT_SIZING or (bounds := bounded(param)) is None:
                continue
            name = param["name"]
            low, high = bounds
            for value in (high, low) if low is not None else (high,):
                response = send(server.url, with_value(call, path, name, value, lon, lat))
                assert response.status_code == 200, f"{method} {path} {name}={value}: {response.text[:300]}"
            too_far = [high * 1000 + 1, 10**12]
            if low is not None and low >= 1:
                too_far.append(low - 1)
            for value in too_far:
                response = send(server.url, with_value(call, path, name, as_number(value), lon, lat))
                assert 400 <= response.status_code < 500, f"{method} {path} {name}={value}: {response.status_code}"
                assert name in response.text, f"{method} {path} {name}={value}: {response.text[:300]}"
            walked.append(f"{method} {path} {name}")
    assert len(walked) >= 20, walked
    assert "POST /layers/{layer}/statistics cover_scale" in walked
    assert "GET /layers/{layer}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format} z" in walked
    growth = server.memory_mb("VmHWM") - idle_mb
    assert growth < RSS_GROWTH_BOUND_MB, f"peak memory grew by {growth:.0f} MB"


@pytest.mark.slow
def test_the_operators_requests_are_refused_with_the_reason(server: Server) -> None:
    """The requests of the report: each a 400 naming the parameter and its limit, nothing read."""
    layer = f"{server.url}/layers/alerts"
    cases = {
        f"{layer}/statistics?width=100000&height=100000": "width must be between 1 and 1024",
        f"{layer}/statistics?width=10000&height=10000": "width must be between 1 and 1024",
        f"{layer}/statistics?histogram_bins=100000000": "histogram_bins must be between 1 and 1024",
        f"{layer}/tiles/WebMercatorQuad/14/0/0.png?tilesize=100000": "tilesize must be between 1 and 1024",
        f"{layer}/tiles/WebMercatorQuad/14/0/0.png?tilesize=16384": "tilesize must be between 1 and 1024",
        f"{layer}/tiles/WebMercatorQuad/14/0/0.png?buffer=100000": "buffer must be between 0 and 64",
        f"{layer}/statistics?width=100": "width and height go together",
        f"{layer}/statistics?max_size=0": "max_size must be between 1 and 1024",
        f"{layer}/tiles/WebMercatorQuad/100000/0/0.png": "z must be between 0 and 30",
        f"{layer}/tiles/WebMercatorQuad?maxzoom=1000000000": "maxzoom must be between 0 and 30",
        f"{layer}/statistics?" + "&".join(f"p={i}" for i in range(40)): "p: 40 values is over the limit of 32",
    }
    for url, reason in cases.items():
        response = httpx.get(url, timeout=30)
        assert response.status_code == 400, (url, response.text)
        assert reason in response.json()["detail"], (url, response.text)
    edges = ",".join(str(i) for i in range(1100))
    response = httpx.get(f"{layer}/statistics", params={"histogram_bins": edges}, timeout=30)
    assert response.status_code == 400
    assert response.json()["detail"] == "histogram_bins: 1100 bin edges is over the limit of 1025 edges (1024 bins)"
    response = httpx.get(f"{layer}/statistics", params={"expression": "b1+" * 4000 + "b1"}, timeout=30)
    assert response.status_code == 414 and "over the limit of 8192" in response.json()["detail"]


@pytest.mark.slow
def test_bodies_are_bounded_and_never_echoed(server: Server) -> None:
    """A body over 1 MB is a short 413 (by its length, or as it streams); a bad body's 422 does not echo it."""
    lon, lat, _ = area(server.url)
    url = f"{server.url}/layers/alerts/statistics"
    big = b'{"type": "FeatureCollection", "features": [' + b" " * (20 * 1024 * 1024) + b"]}"
    response = httpx.post(url, content=big, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413 and len(response.content) < 200, response.text[:300]
    assert "over the limit of 1048576 bytes" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = httpx.post(url, content=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text[:300]

    junk = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": "x" * 500_000}, "properties": {}}
    response = httpx.post(url, json=junk, timeout=60)
    assert response.status_code == 422 and len(response.content) < 2000, len(response.content)
    assert "xxxx" not in response.text

    features = [polygon(lon, lat, 0.002)] * LIMITS.max_features
    response = httpx.post(url, json={"type": "FeatureCollection", "features": features}, timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["features"]) == LIMITS.max_features
    features.append(polygon(lon, lat, 0.002))
    response = httpx.post(url, json={"type": "FeatureCollection", "features": features}, timeout=60)
    assert response.status_code == 400
    assert response.json()["detail"] == "features: 17 features in one request is over the limit of 16"


@pytest.mark.slow
def test_a_world_sized_feature_is_read_at_a_bounded_size(server: Server) -> None:
    """Without a size, a feature reads at native resolution up to 1024 px a side: the whole world counts at most
    1024 x 1024 cells instead of some 10^12 at 20 m."""
    url = f"{server.url}/layers/alerts/statistics"
    world = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[-170, -60], [170, -60], [170, 60], [-170, 60], [-170, -60]]]},
    }
    response = httpx.post(url, json=world, timeout=120)
    assert response.status_code == 200, response.text[:300]
    stats = response.json()["properties"]["statistics"]["b1"]
    assert 0 < stats["count"] + stats["masked_pixels"] <= 1024 * 1024


def test_tilejson_spans_from_the_area_as_a_patch_to_native_plus_two(static_server: str) -> None:
    """The 5.1 x 2.6 km test area (20 m pixels at 48.7 N): its 30 m Web Mercator pixels are nearest zoom 12's
    38 m, so maxzoom 14; at zoom 9 (306 m) the 7.8 km mercator extent is 25 px, at zoom 10 already 51 px > 32."""
    lon, lat, tilejson = area(static_server)
    assert (tilejson["minzoom"], tilejson["maxzoom"]) == (9, 14)
    # Tiles at both ends show the area: some opaque pixels in the tile holding its centre.
    for z in (tilejson["minzoom"], tilejson["maxzoom"]):
        tile = WEB_MERCATOR.tile(lon, lat, z)
        url = f"{static_server}/layers/alerts/tiles/WebMercatorQuad/{z}/{tile.x}/{tile.y}.png?colormap_name=context"
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        alpha = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))[..., 3]
        assert (alpha > 0).any(), z


@pytest.mark.parametrize(
    ("query", "size"),
    [("", 256), ("?tilesize=512", 512), ("?buffer=2", 260), ("?stage=confirmed&colormap_name=alerts-all", 256)],
)
def test_a_tile_outside_the_data_is_an_empty_transparent_image(static_server: str, query: str, size: int) -> None:
    """Outside the area: 200 with a fully transparent PNG of the asked size, never a JSON 404 (ORB blocks it)."""
    for layer in ("alerts", "alert-magnitude"):
        response = httpx.get(f"{static_server}/layers/{layer}/tiles/WebMercatorQuad/12/0/0.png{query}", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text[:200]
        image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
        assert image.shape == (size, size, 4)
        assert not image[..., 3].any(), f"{layer}{query}: {int((image[..., 3] > 0).sum())} visible pixels"


@pytest.mark.slow
def test_requests_over_the_time_budget_answer_503_with_the_reason(static_run: DemoRun) -> None:
    """Statistics and tiles outlasting their budget (1 ms here) are a 503 with the reason; /healthz reads no layer."""
    limits = Limits(timeout_seconds=0.001)
    with serving(ServerSettings(stac_dir=static_run.cfg.output.stac_dir, limits=limits)) as url:
        for path in ("/layers/alerts/statistics?max_size=1024", "/layers/alerts/tiles/WebMercatorQuad/9/277/176.png"):
            response = httpx.get(f"{url}{path}", timeout=60)
            assert response.status_code == 503, path
            assert response.json()["detail"] == "the request exceeded its time budget of 0.001 s"
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200


async def _call(app: Any, path: str) -> tuple[int, dict]:
    """One GET through an ASGI app: status and JSON body."""
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [], "root_path": ""}
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return messages[0]["status"], json.loads(body)


def test_abandoned_work_keeps_its_slot_and_cheap_requests_pass() -> None:
    """Past its budget a request is answered 503 while its worker thread runs on; that thread keeps the slot, so
    the next expensive request is refused as busy, and /healthz passes straight through meanwhile."""
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].endswith("/statistics"):
            await anyio.to_thread.run_sync(release.wait)  # a sync route: its thread cannot be stopped
        await JSONResponse({"path": scope["path"]})(scope, receive, send)

    limits = Limits(expensive_concurrency=1, expensive_queue_seconds=0, timeout_seconds=0.05)
    budget = BudgetMiddleware(app, limits)

    async def scenario() -> None:
        assert await _call(budget, "/layers/alerts/statistics") == (
            503,
            {"detail": "the request exceeded its time budget of 0.05 s"},
        )
        status, body = await _call(budget, "/layers/alerts/statistics")
        assert status == 503 and body["detail"].startswith("busy: all 1 slots for statistics and series requests")
        assert await _call(budget, "/healthz") == (200, {"path": "/healthz"})
        release.set()
        for _ in range(500):  # the abandoned thread ends now: its slot comes back
            if not budget.slots.locked():
                break
            await asyncio.sleep(0.01)
        assert await _call(budget, "/layers/alerts/statistics") == (200, {"path": "/layers/alerts/statistics"})

    asyncio.run(scenario())


def test_limits_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NRT_ALERTS_SERVER_LIMIT_<NAME> changes a limit: the refusal and the OpenAPI maximum follow it."""
    monkeypatch.setenv("NRT_ALERTS_SERVER_LIMIT_MAX_TILESIZE", "512")
    client = TestClient(create_app(ServerSettings(stac_dir=tmp_path)))
    response = client.get("/layers/alerts/tiles/WebMercatorQuad/14/0/0.png?tilesize=513")
    assert response.status_code == 400
    assert response.json() == {"detail": "tilesize=513 is outside the limit: tilesize must be between 1 and 512"}
    tile = client.get("/openapi.json").json()["paths"]["/layers/{layer}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}"]
    tilesize = next(p for p in tile["get"]["parameters"] if p["name"] == "tilesize")
    assert numeric_schemas(tilesize)[0]["maximum"] == 512
