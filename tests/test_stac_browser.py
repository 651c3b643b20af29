"""The catalog as STAC browsers and web-map clients use it: thumbnails, web-map links, CORS, ranges, WMTS."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import morecantile
import numpy as np
import pystac
import pytest
import rasterio
from fastapi.testclient import TestClient
from owslib.wmts import WebMapTileService
from rasterio.warp import transform

from catalog.encoding import CONFIRMED_CODES, status_colormap
from catalog.layers import PUBLISHED_LAYERS
from catalog.store import CatalogLayout, read_index
from catalog.thumbnail import THUMBNAIL_SIZE
from catalog.validate import validate_object, validate_tree
from server.app import create_app
from server.settings import ServerSettings

from conftest import DemoRun

TMS = morecantile.tms.get("WebMercatorQuad")
ALERT_RGBA = {rgba for code, rgba in status_colormap().items() if rgba[3]}
CONFIRMED_RGBA = {status_colormap()[code] for code in CONFIRMED_CODES}
WEB_MAP_RELS = {"xyz", "wms", "tilejson"}


def _rgba(png: bytes) -> np.ndarray:
    """Decode a PNG into (rows, cols, 4)."""
    with rasterio.MemoryFile(io.BytesIO(png)) as mem, mem.open() as src:
        assert src.count == 4
        return np.moveaxis(src.read(), 0, -1)


def _item_files(run: DemoRun) -> list[Path]:
    return sorted((run.cfg.output.stac_dir / "alerts" / "items").glob("*/*.json"))


def _latest_item_ids(run: DemoRun) -> list[str]:
    return sorted(read_index(CatalogLayout(run.cfg.output.stac_dir)).latest.items.values())


def _confirmed_tile(run: DemoRun, zoom: int) -> morecantile.Tile:
    """A tile over the middle of the latest publication's confirmed alerts."""
    layout = CatalogLayout(run.cfg.output.stac_dir)
    with rasterio.open(layout.collection_dir / read_index(layout).latest.mosaics["status"]) as src:
        status = src.read(1)
        rows, cols = np.nonzero(np.isin(status, CONFIRMED_CODES))
        row, col = rows[len(rows) // 2], cols[len(cols) // 2]
        x, y = src.transform @ (col + 0.5, row + 0.5)
        (lon,), (lat,) = transform(src.crs, "EPSG:4326", [x], [y])
    return TMS.tile(lon, lat, zoom)


def test_items_have_a_thumbnail_and_an_overview_asset(static_run: DemoRun) -> None:
    latest = set(_latest_item_ids(static_run))
    alert_pixels = 0
    for path in _item_files(static_run):
        item = json.loads(path.read_text())
        thumbnail = item["assets"]["thumbnail"]
        assert thumbnail["roles"] == ["thumbnail"] and thumbnail["type"] == "image/png"
        rgba = _rgba((path.parent / thumbnail["href"]).read_bytes())
        assert max(rgba.shape[:2]) == THUMBNAIL_SIZE
        opaque = rgba[rgba[..., 3] > 0]
        assert (rgba[..., 3] == 0).any(), "no alert must be transparent"
        assert {tuple(int(v) for v in px) for px in opaque} <= ALERT_RGBA
        if item["id"] in latest:
            alert_pixels += sum(tuple(int(v) for v in px) in CONFIRMED_RGBA for px in opaque)
        status = item["assets"]["status"]
        assert status["roles"] == ["data", "overview"]
        assert {c["value"] for c in status["classification:classes"]} >= {0, 3, 6, 255}
        with rasterio.open(path.parent / status["href"]) as src:
            assert src.overviews(1)
    assert alert_pixels > 50, "the latest thumbnails must show the clear-cuts"
    collection = json.loads((static_run.cfg.output.stac_dir / "alerts" / "collection.json").read_text())
    assert collection["item_assets"]["thumbnail"]["roles"] == ["thumbnail"]


def test_served_json_has_absolute_self_and_web_map_links(static_run: DemoRun, static_server: str) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    assert validate_tree(stac_dir / "catalog.json") > 2
    index = read_index(CatalogLayout(stac_dir))
    catalog_url = f"{static_server}/stac/catalog.json"
    collection_url = f"{static_server}/stac/alerts/collection.json"
    item_id = index.publications[1].items["r000c001"]
    item_url = f"{static_server}/stac/alerts/items/{item_id}/{item_id}.json"
    served = {}
    for url in (catalog_url, collection_url, item_url):
        response = httpx.get(url)
        assert response.status_code == 200
        served[url] = response.json()
        # The served object is what the browser validates: core and every declared extension, offline.
        validate_object(served[url], href=url)
        links = served[url]["links"]
        assert [link["href"] for link in links if link["rel"] == "self"] == [url]
        for link in links:
            if link["rel"] not in {"self"} | WEB_MAP_RELS:
                assert "://" not in link["href"], f"{link} must stay relative"
        # No offline schema of the web-map-links extension: its links are there, the extension is not declared.
        assert not any("web-map-links" in ext for ext in served[url].get("stac_extensions", []))
    assert response.headers["content-type"] == "application/geo+json"
    assert not WEB_MAP_RELS & {link["rel"] for link in served[catalog_url]["links"]}

    collection = {link["rel"]: link for link in served[collection_url]["links"]}
    assert collection["xyz"]["href"] == f"{static_server}/layers/alerts/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
    assert collection["tilejson"]["href"] == f"{static_server}/layers/alerts/WebMercatorQuad/tilejson.json"
    assert collection["wms"]["href"] == f"{static_server}/wms" and collection["wms"]["wms:layers"] == ["alerts"]

    item = {link["rel"]: link for link in served[item_url]["links"]}
    first = index.publications[1]
    assert item["xyz"]["href"].endswith(f"/{{z}}/{{x}}/{{y}}.png?version={first.id}&item={item_id}")
    assert item["tilejson"]["href"].endswith(f"tilejson.json?version={first.id}&item={item_id}")
    assert item["wms"]["wms:layers"] == ["alerts"]
    assert item["wms"]["wms:dimensions"] == {"TIME": first.to_dict()["datetime"]}
    assert served[item_url]["properties"]["datetime"] <= first.to_dict()["datetime"]
    # The files on disk are untouched: links are added when served.
    on_disk = json.loads((stac_dir / "alerts" / "items" / item_id / f"{item_id}.json").read_text())
    assert not ({"self"} | WEB_MAP_RELS) & {link["rel"] for link in on_disk["links"]}


def test_served_links_use_the_public_url(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, public_url="https://maps.example.org/alerts")
    with TestClient(create_app(settings)) as client:
        links = {link["rel"]: link["href"] for link in client.get("/stac/alerts/collection.json").json()["links"]}
    assert links["self"] == "https://maps.example.org/alerts/stac/alerts/collection.json"
    assert links["xyz"].startswith("https://maps.example.org/alerts/layers/alerts/tiles/")
    assert links["wms"] == "https://maps.example.org/alerts/wms"


def test_catalog_json_never_leaves_the_catalog_folder(static_run: DemoRun) -> None:
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        for path in ("/stac/../nrt-alerts.json", "/stac/%2e%2e/nrt-alerts.json", "/stac/alerts/.hidden.json"):
            assert client.get(path).status_code == 404, path
        assert client.get("/stac/alerts/missing.json").status_code == 404
        # Non-STAC JSON is served as written.
        index = client.get("/stac/alerts/publications.json")
        assert (
            index.status_code == 200
            and index.content == (static_run.cfg.output.stac_dir / "alerts" / "publications.json").read_bytes()
        )


def test_cors_preflight_allows_range_and_exposes_validators(static_run: DemoRun, static_server: str) -> None:
    origin = "https://radiantearth.github.io"
    stac_dir = static_run.cfg.output.stac_dir
    cog = next((stac_dir / "alerts" / "items").glob("*/*_status.tif")).relative_to(stac_dir).as_posix()
    url = f"{static_server}/stac/{cog}"
    preflight = httpx.options(
        url,
        headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Range"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", origin)
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    part = httpx.get(url, headers={"Origin": origin, "Range": "bytes=0-1023"})
    assert part.status_code == 206 and len(part.content) == 1024
    assert part.headers["content-range"].startswith("bytes 0-1023/")
    exposed = {h.strip().lower() for h in part.headers["access-control-expose-headers"].split(",")}
    assert {"content-range", "accept-ranges", "etag"} <= exposed


def _resolves(client: httpx.Client, rel: str, href: str, bbox: list[float] | None) -> None:
    """Fetch one link or asset href as a client would; templates are filled in first."""
    if rel == "xyz":
        west, south, east, north = bbox
        tile = TMS.tile((west + east) / 2, (south + north) / 2, 14)
        href = href.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace("{y}", str(tile.y))
    if rel == "wms":
        response = client.get(href, params={"SERVICE": "WMS", "REQUEST": "GetCapabilities"})
        if response.status_code == 404 and response.text == '{"detail":"Not Found"}':
            return  # no /wms route in this app (the WMS is another module): the link is checked once it is served
        assert response.status_code == 200, f"{href}: {response.status_code}"
        return
    if href.endswith(".tif"):
        response = client.get(href, headers={"Range": "bytes=0-15"})
        assert response.status_code == 206, href
    else:
        response = client.get(href)
        assert response.status_code == 200, f"{rel} {href}: {response.status_code}"


def test_pystac_walks_the_served_catalog_and_every_href_resolves(static_run: DemoRun, static_server: str) -> None:
    catalog = pystac.Catalog.from_file(f"{static_server}/stac/catalog.json")
    index = read_index(CatalogLayout(static_run.cfg.output.stac_dir))
    objects: list[pystac.STACObject] = []
    for parent, _children, items in catalog.walk():
        objects.append(parent)
        objects.extend(items)
    items = [o for o in objects if isinstance(o, pystac.Item)]
    assert len(items) == 2 * len(index.publications)
    checked: set[str] = set()
    area_bbox = next(o for o in objects if isinstance(o, pystac.Collection)).extent.spatial.bboxes[0]
    with httpx.Client(timeout=30) as client:
        for obj in objects:
            bbox = obj.bbox if isinstance(obj, pystac.Item) else area_bbox
            hrefs = [(link.rel, link.get_absolute_href()) for link in obj.links]
            hrefs += [("asset", asset.get_absolute_href()) for asset in getattr(obj, "assets", {}).values()]
            for rel, href in hrefs:
                assert href.startswith(static_server), href
                if href not in checked:
                    checked.add(href)
                    _resolves(client, rel, href, bbox)
    assert any(h.endswith("_thumbnail.png") for h in checked)
    assert any("?version=" in h for h in checked)


def test_wmts_capabilities_parse_and_tiles_show_alerts(static_run: DemoRun, static_server: str) -> None:
    wmts = WebMapTileService(f"{static_server}/wmts/1.0.0/WMTSCapabilities.xml")
    assert wmts.identification.type == "OGC WMTS" and wmts.version == "1.0.0"
    assert set(wmts.contents) == {layer.name for layer in PUBLISHED_LAYERS}
    tms = wmts.tilematrixsets["WebMercatorQuad"]
    assert len(tms.tilematrix) == 25 and tms.crs == "urn:ogc:def:crs:EPSG::3857"
    layer = wmts.contents["alerts"]
    assert layer.formats == ["image/png"]
    west, south, east, north = layer.boundingBoxWGS84
    assert 14.9 < west < east < 15.2 and 48.6 < south < north < 48.9
    time = layer.dimensions["Time"]
    versions = [p.id for p in read_index(CatalogLayout(static_run.cfg.output.stac_dir)).publications]
    assert time["default"] == "latest" and set(time["values"]) == {"latest", *versions}
    assert "{TileMatrix}/{TileCol}/{TileRow}.png" in layer.resourceURLs[0]["template"]

    tile = _confirmed_tile(static_run, 15)
    limits = layer.tilematrixsetlinks["WebMercatorQuad"].tilematrixlimits["15"]
    assert limits.mintilecol <= tile.x <= limits.maxtilecol and limits.mintilerow <= tile.y <= limits.maxtilerow

    def gettile(when: str) -> np.ndarray:
        response = wmts.gettile(
            layer="alerts",
            tilematrixset="WebMercatorQuad",
            tilematrix=str(tile.z),
            row=tile.y,
            column=tile.x,
            format="image/png",
            Time=when,
        )
        assert response.info()["Content-Type"] == "image/png"
        return _rgba(response.read())

    latest = gettile(time["default"])
    confirmed = sum(tuple(int(v) for v in px) in CONFIRMED_RGBA for px in latest.reshape(-1, 4))
    assert confirmed > 100, f"tile {tile} shows {confirmed} confirmed-alert pixels"
    # The first publication (right after the fit) has no alert yet: the Time dimension reaches it.
    assert gettile(versions[0])[..., 3].max() == 0


@pytest.mark.parametrize("path", ["/wmts/1.0.0/WMTSCapabilities.xml"])
def test_wmts_capabilities_before_any_publication(tmp_path: Path, path: str) -> None:
    with TestClient(create_app(ServerSettings(stac_dir=tmp_path / "stac"))) as client:
        assert client.get(path).status_code == 404
