"""Server behaviour that needs no HTTP socket: public URLs behind a proxy, caching headers, layer listing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings

from conftest import DemoRun


def test_public_url_is_used_in_generated_links(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, public_url="https://maps.example.org/alerts")
    with TestClient(create_app(settings)) as client:
        tilejson = client.get("/layers/alerts/WebMercatorQuad/tilejson.json").json()
        assert tilejson["tiles"][0].startswith("https://maps.example.org/alerts/layers/alerts/tiles/WebMercatorQuad/")
        layers = client.get("/layers").json()
        assert {layer["name"] for layer in layers} == {
            "alerts",
            "alert-date",
            "alert-confirmed",
            "alert-magnitude",
            "alert-confidence",
            "alert-date-conf",
        }
        assert layers[0]["tiles"].startswith("https://maps.example.org/alerts/layers/")


def test_dated_versions_are_immutable_and_latest_is_short_lived(static_run: DemoRun) -> None:
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        versions = client.get("/layers").json()[0]["versions"]
        assert len(versions) == 4
        tile = "/layers/alerts/tiles/WebMercatorQuad/12/2218/1411.png"
        latest = client.get(tile)
        dated = client.get(tile, params={"version": versions[0]})
        assert latest.status_code == dated.status_code == 200
        assert latest.headers["cache-control"] == "public, max-age=60"
        assert "immutable" in dated.headers["cache-control"]
        # The first version (after the fit) has no alerts yet; the latest has: the images differ.
        assert latest.content != dated.content


def test_behind_a_prefixing_proxy_static_files_still_resolve(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, public_url="https://maps.example.org/alerts")
    cog = next(static_run.cfg.output.stac_dir.glob("alerts/items/*/*_status.tif"))
    rel = cog.relative_to(static_run.cfg.output.stac_dir).as_posix()
    with TestClient(create_app(settings)) as client:
        # The proxy strips /alerts before forwarding; the server must still find the files.
        assert client.get(f"/stac/{rel}", headers={"Range": "bytes=0-9"}).status_code == 206
        catalog = client.get("/stac/catalog.json")
        assert catalog.status_code == 200
        self_link = next(link for link in catalog.json()["links"] if link["rel"] == "self")
        assert self_link["href"] == "https://maps.example.org/alerts/stac/catalog.json"


def test_published_files_are_world_readable(static_run: DemoRun) -> None:
    for path in [
        *static_run.cfg.output.stac_dir.glob("alerts/items/*/*"),
        static_run.cfg.output.stac_dir / "catalog.json",
    ]:
        assert path.stat().st_mode & 0o044 == 0o044, f"{path.name} is not readable by group and others"


def test_path_like_wms_layer_gets_an_ogc_exception(static_run: DemoRun) -> None:
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        response = client.get("/wms", params={"SERVICE": "WMS", "REQUEST": "GetMap", "LAYERS": "../../etc/passwd"})
    assert response.status_code == 400
    assert "ServiceExceptionReport" in response.text and 'code="LayerNotDefined"' in response.text
    assert "root:" not in response.text
