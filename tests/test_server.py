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
