"""Health and status are never cached: the map's poll must see a new publication at once."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings

from conftest import DemoRun


def test_healthz_and_status_are_not_stored(static_run: DemoRun) -> None:
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        for path in ("/healthz", "/status"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["cache-control"] == "no-store", path
        # Tiles of 'latest' keep their short max-age: only health and status are exempt.
        tile = client.get("/layers/alerts/tiles/WebMercatorQuad/12/2218/1411.png")
        assert tile.headers["cache-control"] == "public, max-age=60"


def test_stale_healthz_is_not_stored_either(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, healthz_max_age_seconds=1e-9)
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "stale"
    assert response.headers["cache-control"] == "no-store"
