"""No endpoint reads a file a client names: `../`, absolute paths, `/vsicurl/`, `file://` are refused."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import morecantile
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.crs import CRS
from rasterio.warp import transform

from catalog.layers import LAYERS_BY_NAME
from catalog.store import CatalogLayout, read_index
from server.app import create_app
from server.errors import ForbiddenPath
from server.reader import guarded_reader
from server.settings import ServerSettings

from conftest import DemoRun, free_port

TMS = morecantile.tms.get("WebMercatorQuad")
PASSWD_MARK = "root:x:0:0"
CANARY_MARK = "canary-3f9a1c"


@dataclass(frozen=True)
class Canary:
    """A loopback HTTP listener in its own process that records every request, plus a readable local file."""

    port: int
    log: Path
    wkt: Path

    def requests(self) -> list[str]:
        """Request lines the listener logged so far."""
        return [line for line in self.log.read_text().splitlines() if '"' in line and "HTTP/" in line]

    def since(self, seen: int) -> list[str]:
        """Requests logged after the first `seen` ones."""
        return self.requests()[seen:]


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canary]:
    """A URL that must never be fetched and a WKT file that must never be read (a separate process: GDAL may hold
    the GIL while it fetches, which would deadlock a listener in this process)."""
    root = tmp_path_factory.mktemp("canary")
    wkt = root / "canary.wkt"
    # A valid CRS definition: if the server read this file, a CRS parameter naming it would be accepted.
    wkt.write_text(CRS.from_epsg(3035).to_wkt().replace("ETRS89-extended / LAEA Europe", CANARY_MARK, 1))
    assert CANARY_MARK in wkt.read_text()
    port = free_port()
    log = root / "requests.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/selfcheck", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("canary listener did not start") from None
                time.sleep(0.1)
        found = Canary(port, log, wkt)
        # The listener really records what reaches it, so an empty log later means nothing was fetched.
        deadline = time.monotonic() + 5
        while not any("/selfcheck" in line for line in found.requests()):
            assert time.monotonic() < deadline, "canary listener does not log requests"
            time.sleep(0.05)
        yield found
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def hostile_values(canary: Canary) -> list[str]:
    """Values naming files, folders and URLs; none may make the server read or fetch anything."""
    return [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "/etc/passwd",
        f"/vsicurl/http://127.0.0.1:{canary.port}/vsicurl.tif",
        "file:///etc/passwd",
        "/vsizip//tmp/x.zip",
        f"http://127.0.0.1:{canary.port}/plain.tif",
        str(canary.wkt),
    ]


@dataclass(frozen=True)
class Place:
    """Valid values for every path parameter: a point and a tile over the published area."""

    lon: float
    lat: float
    tile: morecantile.Tile

    def path_values(self) -> dict[str, str]:
        """Path parameter name -> a value that makes the route answer 200."""
        return {
            "layer": "alerts",
            "tileMatrixSetId": "WebMercatorQuad",
            "format": "png",
            "z": str(self.tile.z),
            "x": str(self.tile.x),
            "y": str(self.tile.y),
            "lon": f"{self.lon:.6f}",
            "lat": f"{self.lat:.6f}",
        }

    def feature(self) -> dict:
        """A small GeoJSON polygon around the point (the body of POST /statistics)."""
        d = 0.002
        ring = [
            [self.lon - d, self.lat - d],
            [self.lon + d, self.lat - d],
            [self.lon + d, self.lat + d],
            [self.lon - d, self.lat + d],
            [self.lon - d, self.lat - d],
        ]
        return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def latest_mosaic(run: DemoRun, asset: str = "status") -> Path:
    layout = CatalogLayout(run.cfg.output.stac_dir)
    return layout.collection_dir / read_index(layout).latest.mosaics[asset]


@pytest.fixture(scope="module")
def place(static_run: DemoRun) -> Place:
    with rasterio.open(latest_mosaic(static_run)) as src:
        x, y = src.xy(src.height // 2, src.width // 2)
        lon, lat = transform(src.crs, "EPSG:4326", [x], [y])
    return Place(lon[0], lat[0], TMS.tile(lon[0], lat[0], 14))


@pytest.fixture(scope="module")
def openapi(static_run: DemoRun) -> dict:
    return create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir)).openapi()


def operations(openapi: dict) -> list[tuple[str, str, dict]]:
    """(method, path template, operation) of every route in the OpenAPI document."""
    return [(method, path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()]


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    assert "{" not in template, f"no value for a path parameter of {template}"
    return template


def send(client: httpx.Client, method: str, path: str, place: Place, params: dict | None = None) -> httpx.Response:
    body = place.feature() if method == "post" else None
    return client.request(method.upper(), path, params=params, json=body)


def try_hostile(client: httpx.Client, method: str, path: str, place: Place, params: dict | None = None) -> str | None:
    """Send one hostile request; why its answer is wrong, or None when it is a proper refusal."""
    try:
        return refusal_problem(send(client, method, path, place, params))
    except httpx.TransportError as exc:  # the server dropped the connection: an unhandled error
        return f"no answer ({exc!r})"


def refusal_problem(response: httpx.Response) -> str | None:
    """Why a response to a hostile request is wrong, or None when it is a proper refusal."""
    if PASSWD_MARK in response.text or CANARY_MARK in response.text:
        return "leaks the named file's content"
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    if response.url.path.endswith("/wms"):
        # WMS clients get OGC exception reports, with the reason in the element text.
        ok = "ServiceExceptionReport" in response.text and "<ServiceException" in response.text
        return None if ok else "not a ServiceExceptionReport"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict) or not body.get("detail"):
        return "no 'detail' reason"
    return None


def test_openapi_declares_no_url_parameter(openapi: dict) -> None:
    ops = operations(openapi)
    assert len(ops) >= 10, "the layer routes are missing from the OpenAPI document"
    named = [
        f"{method.upper()} {path}"
        for method, path, op in ops
        for p in op.get("parameters", [])
        if p["name"].lower() == "url"
    ]
    assert not named, f"routes that accept a client-named dataset: {named}"


def test_every_route_answers_with_valid_parameters(static_server: str, openapi: dict, place: Place) -> None:
    """The baseline for the sweeps below: every route works, so their 4xx come from the hostile values."""
    with httpx.Client(base_url=static_server, timeout=60) as client:
        for method, path, _ in operations(openapi):
            response = send(client, method, fill(path, place.path_values()), place)
            assert response.status_code == 200, f"{method.upper()} {path}: {response.status_code} {response.text}"


def test_hostile_query_values_are_refused_on_every_route(
    static_server: str, openapi: dict, place: Place, canary: Canary
) -> None:
    seen = len(canary.requests())
    failures: list[str] = []
    tried = 0
    with httpx.Client(base_url=static_server, timeout=60) as client:
        for method, path, op in operations(openapi):
            url = fill(path, place.path_values())
            for param in op.get("parameters", []):
                if param["in"] != "query":
                    continue
                for value in hostile_values(canary):
                    tried += 1
                    if problem := try_hostile(client, method, url, place, {param["name"]: value}):
                        failures.append(f"{method.upper()} {path} ?{param['name']}={value}: {problem}")
    assert tried > 500, f"only {tried} hostile requests: the sweep missed parameters"
    assert not failures, f"{len(failures)} hostile requests not refused:\n" + "\n".join(failures[:30])
    assert canary.since(seen) == [], "the server fetched a URL a client named"


def test_hostile_path_values_are_refused_on_every_route(
    static_server: str, openapi: dict, place: Place, canary: Canary
) -> None:
    seen = len(canary.requests())
    failures: list[str] = []
    tried = 0
    with httpx.Client(base_url=static_server, timeout=60) as client:
        for method, path, op in operations(openapi):
            for param in op.get("parameters", []):
                if param["in"] != "path":
                    continue
                for value in hostile_values(canary):
                    # Once as one percent-encoded segment, once as is (which the client may normalise).
                    for encoded in (quote(value, safe=""), value):
                        values = place.path_values() | {param["name"]: encoded}
                        tried += 1
                        if problem := try_hostile(client, method, fill(path, values), place):
                            failures.append(f"{method.upper()} {path} {param['name']}={encoded}: {problem}")
    assert tried > 100
    assert not failures, f"{len(failures)} hostile requests not refused:\n" + "\n".join(failures[:30])
    assert canary.since(seen) == [], "the server fetched a URL a client named"


def test_url_parameter_is_refused_on_every_get_route(
    static_server: str, openapi: dict, place: Place, canary: Canary
) -> None:
    seen = len(canary.requests())
    with httpx.Client(base_url=static_server, timeout=60) as client:
        for method, path, _ in operations(openapi):
            if method != "get":
                continue
            for value in ("/etc/passwd", f"/vsicurl/http://127.0.0.1:{canary.port}/url.tif"):
                response = client.get(fill(path, place.path_values()), params={"url": value})
                assert response.status_code == 400, f"GET {path}?url=: {response.status_code} {response.text}"
                assert "layers are named" in response.json()["detail"]
                assert PASSWD_MARK not in response.text
    assert canary.since(seen) == []


def test_crs_parameters_accept_codes_but_not_files(
    static_run: DemoRun, place: Place, canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir)))
    for crs in ("EPSG:3857", "[EPSG:3857]", "OGC:CRS84", "http://www.opengis.net/def/crs/EPSG/0/4326"):
        response = client.get("/layers/alerts/info.geojson", params={"crs": crs})
        assert response.status_code == 200, f"crs={crs}: {response.text}"
    # GDAL parses a CRS string that is not a code by reading it as a file: a valid WKT file must not be taken.
    monkeypatch.chdir(canary.wkt.parent)
    for crs in (str(canary.wkt), canary.wkt.name, f"./{canary.wkt.name}"):
        response = client.get("/layers/alerts/info.geojson", params={"crs": crs})
        assert response.status_code == 400, f"crs={crs}: {response.status_code} {response.text}"
        assert "crs" in response.json()["detail"] and CANARY_MARK not in response.text
    response = client.get(f"/layers/alerts/point/{place.lon},{place.lat}", params={"coord_crs": canary.wkt.name})
    assert response.status_code == 400 and "coord_crs" in response.json()["detail"]


def test_malformed_expression_is_a_client_error(static_server: str, place: Place) -> None:
    tile = place.tile
    response = httpx.get(
        f"{static_server}/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png",
        params={"expression": "b1+("},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "expression" in response.json()["detail"].lower()


# --- the guarded reader itself ---------------------------------------------------------------------------------


def test_guarded_reader_refuses_everything_outside_root(static_run: DemoRun, canary: Canary) -> None:
    seen = len(canary.requests())
    root = static_run.cfg.output.stac_dir
    state = static_run.cfg.output.state_dir / "r000c000.nc"
    assert state.exists()
    reader = guarded_reader(root)
    refused = [
        "/etc/passwd",
        f"{root}/../x.tif",
        f"{root}/alerts/../../state/{state.name}",  # an existing file, reached through the root
        str(state),
        f"/vsicurl/http://127.0.0.1:{canary.port}/reader.tif",
        f"/vsizip/{root}/x.zip",
        "file:///etc/passwd",
        "s3://bucket/x.tif",
        "https://example.org/x.tif",
        "relative.tif",
    ]
    for path in refused:
        with pytest.raises(ForbiddenPath):
            reader(path)
    assert canary.since(seen) == []


def test_guarded_reader_refuses_a_symlink_leading_out_of_root(tmp_path: Path, static_run: DemoRun) -> None:
    inside = tmp_path / "stac"
    inside.mkdir()
    cog = next((static_run.cfg.output.stac_dir / "alerts" / "items").glob("*/*_status.tif"))
    (inside / "copy.tif").write_bytes(cog.read_bytes())
    (inside / "link.tif").symlink_to(cog)
    with pytest.raises(ForbiddenPath):
        guarded_reader(inside)(str(inside / "link.tif"))
    # A real file under the same root opens, and so does the link's target through a root that contains it.
    with guarded_reader(inside)(str(inside / "copy.tif")) as src:
        assert src.dataset.count == 1
    with guarded_reader(static_run.cfg.output.stac_dir)(str(cog)) as src:
        assert src.dataset.count == 1


def test_guarded_reader_opens_a_published_mosaic(static_run: DemoRun, place: Place) -> None:
    root = static_run.cfg.output.stac_dir
    mosaic = latest_mosaic(static_run)
    assert mosaic.resolve().is_relative_to(root.resolve())
    with guarded_reader(root)(str(mosaic)) as src:
        assert src.dataset.count == 1
        assert src.dataset.descriptions[0] == "status"
        value = src.point(place.lon, place.lat).data[0]
    with rasterio.open(mosaic) as ds:
        row, col = ds.index(*ds.xy(ds.height // 2, ds.width // 2))
        assert value == ds.read(1)[row, col]


# --- /stac static files --------------------------------------------------------------------------------------


def raw_get(base: str, raw_path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a path exactly as written: no client-side dot-segment normalisation or re-encoding."""
    netloc = urlsplit(base)
    conn = http.client.HTTPConnection(netloc.hostname, netloc.port, timeout=30)
    try:
        conn.request("GET", raw_path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_stac_files_never_leave_the_catalog_folder(static_run: DemoRun, static_server: str) -> None:
    output = static_run.cfg.output.dir
    # Targets that exist just outside the served folder: states, the deployment config, the repository.
    config_text = (output.parent / "nrt-alerts.toml").read_bytes()
    state = static_run.cfg.output.state_dir / "r000c000.nc"
    assert state.exists() and config_text
    for raw in (
        "/stac/../pyproject.toml",
        "/stac/../state/r000c000.nc",
        "/stac/../../nrt-alerts.toml",
        "/stac/%2e%2e/state/r000c000.nc",
        "/stac/%2e%2e/%2e%2e/nrt-alerts.toml",
        "/stac/%2e%2e/%2e%2e/etc/passwd",
        "/stac/..%2f..%2fnrt-alerts.toml",
        "/stac/alerts/..%2f..%2f..%2fnrt-alerts.toml",
        "/stac//etc/passwd",
        "/stac/%2fetc%2fpasswd",
    ):
        status, body = raw_get(static_server, raw)
        assert status == 404, f"{raw}: {status}"
        assert PASSWD_MARK.encode() not in body and b"[area]" not in body and not body.startswith(b"\x89HDF")


def test_stac_hidden_files_are_not_served(static_run: DemoRun, static_server: str) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    assert (stac_dir / ".publish.lock").exists(), "the publisher's lock is the hidden file this test asks for"
    for raw in ("/stac/.publish.lock", "/stac/%2epublish.lock", "/stac/alerts/../.publish.lock"):
        status, _ = raw_get(static_server, raw)
        assert status == 404, f"{raw}: {status}"


def test_stac_hidden_names_anywhere_in_the_path_are_refused(tmp_path: Path) -> None:
    stac_dir = tmp_path / "stac"
    (stac_dir / ".tmp").mkdir(parents=True)
    (stac_dir / "ok.json").write_text('{"ok": true}')
    (stac_dir / ".half-written.json").write_text('{"secret": true}')
    (stac_dir / ".tmp" / "x.json").write_text('{"secret": true}')
    client = TestClient(create_app(ServerSettings(stac_dir=stac_dir)))
    assert client.get("/stac/ok.json").json() == {"ok": True}
    for path in ("/stac/.half-written.json", "/stac/.tmp/x.json"):
        response = client.get(path)
        assert response.status_code == 404 and "secret" not in response.text


def test_stac_cog_is_served_whole_and_in_ranges(static_run: DemoRun, static_server: str) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    cog = next((stac_dir / "alerts" / "items").glob("*/*_status.tif"))
    raw = "/stac/" + cog.relative_to(stac_dir).as_posix()
    status, body = raw_get(static_server, raw)
    assert status == 200 and body == cog.read_bytes()
    status, part = raw_get(static_server, raw, {"Range": "bytes=0-99"})
    assert status == 206 and part == cog.read_bytes()[:100]


# --- named layers and versions ---------------------------------------------------------------------------------


def test_unknown_layer_is_404_listing_the_known_layers(static_server: str, place: Place) -> None:
    tile = place.tile
    for path in (
        "/layers/nope/info",
        f"/layers/nope/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png",
        f"/layers/nope/point/{place.lon},{place.lat}",
    ):
        response = httpx.get(static_server + path, timeout=30)
        assert response.status_code == 404, f"{path}: {response.text}"
        detail = response.json()["detail"]
        assert "nope" in detail
        assert all(name in detail for name in LAYERS_BY_NAME), detail


def test_malformed_version_is_refused_before_the_registry(static_server: str, place: Place) -> None:
    for path in ("/layers/alerts/info", f"/point/{place.lon},{place.lat}"):
        for version in ("2024-01-01", "latest;rm", "20240101T000000-x", "LATEST"):
            response = httpx.get(static_server + path, params={"version": version}, timeout=30)
            assert response.status_code == 422, f"{path}?version={version}: {response.text}"
            assert response.json()["detail"]
        # Path-like versions are refused by the path guard, before any validation.
        response = httpx.get(static_server + path, params={"version": "../../x"}, timeout=30)
        assert response.status_code == 400, response.text
        assert "version" in response.json()["detail"]


def test_unknown_well_formed_version_is_404(static_server: str, place: Place) -> None:
    for path in ("/layers/alerts/info", f"/point/{place.lon},{place.lat}"):
        response = httpx.get(static_server + path, params={"version": "20990101T000000"}, timeout=30)
        assert response.status_code == 404, response.text
        assert "20990101T000000" in response.json()["detail"]
    # A published version answers, so the 404 above is about the version, not the route.
    version = read_index_latest_id(static_server)
    assert httpx.get(f"{static_server}/layers/alerts/info", params={"version": version}).status_code == 200


def read_index_latest_id(base: str) -> str:
    return httpx.get(f"{base}/healthz", timeout=30).json()["latest_version"]
