"""HTTP caching: immutable dated versions, short-lived latest with ETags, 304s, and new publications at once."""

from __future__ import annotations

from pathlib import Path

import morecantile
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.warp import transform_bounds
from test_mosaic_seams import RIGHT, copy_catalog, publish_one_tile

from catalog.store import CatalogLayout, read_index
from catalog.tree import month_of
from server.app import create_app
from server.caching import IMMUTABLE, Kind, matches, policy_for
from server.settings import ServerSettings

from conftest import DemoRun

TMS = morecantile.tms.get("WebMercatorQuad")
SHORT = "public, max-age=60"


def _tile_url(layout: CatalogLayout, tile_id: str, zoom: int = 14) -> str:
    """The tile URL over the centre of one demo tile."""
    item = read_index(layout).latest.items[tile_id]
    with rasterio.open(layout.item_path(item).parent / f"{item}_status.tif") as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    tile = TMS.tile((west + east) / 2, (south + north) / 2, zoom)
    return f"/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"


@pytest.fixture(scope="module")
def client(static_run: DemoRun) -> TestClient:
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        yield client


def test_dated_tiles_are_immutable_with_an_etag_and_304(static_run: DemoRun, client: TestClient) -> None:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    url = _tile_url(layout, RIGHT)
    for version in [p.id for p in read_index(layout).publications]:
        first = client.get(url, params={"version": version})
        assert first.status_code == 200 and first.headers["cache-control"] == IMMUTABLE
        etag = first.headers["etag"]
        again = client.get(url, params={"version": version})
        assert again.headers["etag"] == etag and again.content == first.content
        revalidated = client.get(url, params={"version": version}, headers={"If-None-Match": etag})
        assert revalidated.status_code == 304 and revalidated.content == b""
        assert revalidated.headers["etag"] == etag and revalidated.headers["cache-control"] == IMMUTABLE
        assert client.get(url, params={"version": version}, headers={"If-None-Match": '"other"'}).status_code == 200
    publications = read_index(layout).publications
    etags = {client.get(url, params={"version": p.id}).headers["etag"] for p in publications}
    assert len(etags) == len(publications), "each version has its own ETag"


def test_latest_tiles_are_short_lived_with_an_etag_and_304(static_run: DemoRun, client: TestClient) -> None:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    url = _tile_url(layout, RIGHT)
    latest = client.get(url)
    assert latest.status_code == 200 and latest.headers["cache-control"] == SHORT
    # Same image as the latest dated version, but a different resource: the two are cached differently.
    dated = client.get(url, params={"version": read_index(layout).latest.id})
    assert dated.content == latest.content and dated.headers["etag"] != latest.headers["etag"]
    revalidated = client.get(url, headers={"If-None-Match": latest.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert revalidated.headers["cache-control"] == SHORT
    # Other publication-derived responses follow the same rules.
    layers = client.get("/layers")
    assert layers.headers["cache-control"] == SHORT
    assert client.get("/layers", headers={"If-None-Match": layers.headers["etag"]}).status_code == 304


def test_item_assets_are_immutable_and_catalog_json_short(static_run: DemoRun, client: TestClient) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    item_dir = next((stac_dir / "alerts" / "items").iterdir())
    for asset in sorted(item_dir.glob("*.tif")) + sorted(item_dir.glob("*.png")):
        url = f"/stac/{asset.relative_to(stac_dir).as_posix()}"
        response = client.get(url)
        assert response.status_code == 200 and response.headers["cache-control"] == IMMUTABLE, url
        part = client.get(url, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.headers["cache-control"] == IMMUTABLE
        not_modified = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.headers["cache-control"] == IMMUTABLE
    item_json = f"alerts/items/{item_dir.name}/{item_dir.name}.json"
    for path in ("catalog.json", "alerts/collection.json", "alerts/publications.json", item_json):
        url = f"/stac/{path}"
        response = client.get(url)
        assert response.status_code == 200 and response.headers["cache-control"] == SHORT, url
        not_modified = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""


def test_a_refused_request_is_never_answered_304(client: TestClient) -> None:
    url = "/layers/alerts/tiles/WebMercatorQuad/14/8876/5644.png"
    assert client.get(url, params={"url": "/etc/passwd"}, headers={"If-None-Match": "*"}).status_code == 400


def test_a_new_publication_shows_at_once(static_run: DemoRun, tmp_path: Path) -> None:
    layout = copy_catalog(static_run, tmp_path / "stac")
    url = _tile_url(layout, RIGHT)
    with TestClient(create_app(ServerSettings(stac_dir=layout.root))) as client:
        old_version = read_index(layout).latest.id
        before = client.get(url)
        dated = client.get(url, params={"version": old_version})
        collection = client.get("/stac/alerts/collection.json")
        assert before.status_code == dated.status_code == 200

        publication = publish_one_tile(layout, RIGHT)

        after = client.get(url, headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200, "the old ETag of latest must not match once a new version is out"
        assert after.headers["etag"] != before.headers["etag"]
        assert after.content != before.content
        assert after.content == client.get(url, params={"version": publication.id}).content
        # The dated tile of the previous version is what it was.
        old = client.get(url, params={"version": old_version}, headers={"If-None-Match": dated.headers["etag"]})
        assert old.status_code == 304
        assert client.get(url, params={"version": old_version}).content == dated.content
        # The catalog JSON moved too.
        moved = client.get("/stac/alerts/collection.json", headers={"If-None-Match": collection.headers["etag"]})
        month = month_of(publication.datetime)
        assert moved.status_code == 200 and f"./months/{month}/catalog.json" in moved.text
        assert publication.items[RIGHT] in client.get(f"/stac/alerts/months/{month}/catalog.json").text
        assert client.get("/healthz").json()["latest_version"] == publication.id


@pytest.mark.parametrize(
    ("path", "version", "kind"),
    [
        ("/layers/alerts/tiles/WebMercatorQuad/1/2/3.png", "20240311T101200", Kind.VERSIONED),
        ("/layers/alerts/tiles/WebMercatorQuad/1/2/3.png", "latest", Kind.LATEST),
        ("/layers/alerts/tiles/WebMercatorQuad/1/2/3.png", None, Kind.LATEST),
        ("/point/15.0,48.7", "20240311T101200", Kind.VERSIONED),
        ("/layers", None, Kind.LATEST),
        ("/layers", "20240311T101200", Kind.LATEST),
        ("/stac/alerts/items/a/a_status.tif", None, Kind.ASSET),
        ("/stac/alerts/items/a/a_thumbnail.png", None, Kind.ASSET),
        ("/stac/alerts/collection.json", None, Kind.SHORT),
        ("/stac/alerts/mosaics/20240311T101200/status.vrt", None, Kind.SHORT),
        ("/wmts/1.0.0/WMTSCapabilities.xml", None, Kind.SHORT),
    ],
)
def test_policy(path: str, version: str | None, kind: Kind) -> None:
    assert policy_for(path, version).kind is kind


def test_if_none_match_compares_weakly() -> None:
    assert matches('W/"abc"', 'W/"abc"') and matches('"abc"', 'W/"abc"') and matches('"x", W/"abc"', 'W/"abc"')
    assert matches("*", 'W/"abc"')
    assert not matches(None, 'W/"abc"') and not matches('"abcd"', 'W/"abc"')
