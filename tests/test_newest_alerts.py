"""`/alerts/newest`: filtered like the tiles, sizes in hectares, any publication, and a cache of its own per app."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from fastapi.testclient import TestClient
from rasterio.crs import CRS

from catalog.encoding import CONFIRMED_CODES, days_since_epoch
from catalog.store import CatalogLayout, read_index
from server.app import create_app
from server.routers.alerts import pixel_area_m2
from server.settings import ServerSettings

from conftest import DemoRun, latest_layers


@pytest.fixture(scope="module")
def client(static_run: DemoRun) -> TestClient:
    """The static run's catalog served in process."""
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as c:
        yield c


def _newest(client: TestClient, **params: str) -> dict:
    response = client.get("/alerts/newest", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _confirmed(run: DemoRun) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    layers = latest_layers(run)
    return np.isin(layers["status"], CONFIRMED_CODES), layers


def test_patches_cover_exactly_the_confirmed_pixels(client: TestClient, static_run: DemoRun) -> None:
    confirmed, _ = _confirmed(static_run)
    patches = _newest(client)["patches"]
    assert sum(p["pixels"] for p in patches) == int(confirmed.sum()) > 50


def test_sizes_are_in_hectares(client: TestClient, static_run: DemoRun) -> None:
    # The demo grid is UTM with 20 m pixels: 400 m2, 0.04 ha each.
    assert static_run.cfg.area.resolution == 20
    patches = _newest(client)["patches"]
    assert patches
    for p in patches:
        assert p["area_ha"] == pytest.approx(p["pixels"] * 0.04, abs=1e-4), p


def test_date_filter_keeps_the_pixels_the_tiles_keep(client: TestClient, static_run: DemoRun) -> None:
    confirmed, layers = _confirmed(static_run)
    every = _newest(client)["patches"]
    dates = sorted({p["detection_date"] for p in every})
    assert len(dates) >= 3, dates
    after = dates[len(dates) // 2]
    kept = _newest(client, detected_after=after)["patches"]
    assert kept and all(p["detection_date"] >= after for p in kept)
    expected = confirmed & (layers["date"] >= days_since_epoch(dt.date.fromisoformat(after)))
    assert sum(p["pixels"] for p in kept) == int(expected.sum()) < int(confirmed.sum())
    # Both ends: a one-day window keeps only that day's first detections.
    day = dates[-1]
    one_day = _newest(client, detected_after=day, detected_before=day)["patches"]
    assert {p["detection_date"] for p in one_day} == {day}


def test_confidence_filter_keeps_the_pixels_the_tiles_keep(client: TestClient, static_run: DemoRun) -> None:
    confirmed, layers = _confirmed(static_run)
    confidence = layers["confidence"]
    threshold = float(np.nanmedian(confidence[confirmed]))
    kept = _newest(client, min_confidence=str(threshold))["patches"]
    with np.errstate(invalid="ignore"):
        expected = confirmed & (confidence >= threshold)
    assert 0 < sum(p["pixels"] for p in kept) == int(expected.sum()) < int(confirmed.sum())


def test_an_earlier_publication_and_bad_parameters(client: TestClient) -> None:
    versions = client.get("/layers").json()[0]["versions"]
    first = _newest(client, version=versions[0])
    # The first publication (the fit, before any update) has no confirmed alert yet.
    assert first["version"] == versions[0] and first["patches"] == []
    assert _newest(client)["version"] == versions[-1]
    bad = client.get("/alerts/newest", params={"detected_after": "2024-13-01"})
    assert bad.status_code == 400 and "detected_after" in bad.text
    assert client.get("/alerts/newest", params={"version": "20990101T000000"}).status_code == 404


def _writable_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = Path(root) / name
            path.chmod(path.stat().st_mode | 0o200)
    return dest


def test_two_apps_with_equal_publication_ids_keep_their_own_lists(static_run: DemoRun, tmp_path: Path) -> None:
    first = _writable_copy(static_run.cfg.output.stac_dir, tmp_path / "a")
    second = _writable_copy(static_run.cfg.output.stac_dir, tmp_path / "b")
    # The second catalog's latest publication has no alert at all: every status pixel says "monitored, none".
    layout = CatalogLayout(second)
    latest = read_index(layout).latest
    for item in latest.items.values():
        with rasterio.open(layout.asset_path(item, "status"), "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            dst.write(np.zeros((dst.height, dst.width), dtype=dst.dtypes[0]), 1)
    with (
        TestClient(create_app(ServerSettings(stac_dir=first))) as a,
        TestClient(create_app(ServerSettings(stac_dir=second))) as b,
    ):
        seen_a, seen_b = _newest(a), _newest(b)
        assert seen_a["version"] == seen_b["version"] == latest.id
        assert len(seen_a["patches"]) > 5
        assert seen_b["patches"] == []
        # And the other way round, now that both lists are cached.
        assert _newest(a)["patches"] == seen_a["patches"]
        assert _newest(b)["patches"] == []


def test_pixel_area_on_projected_and_geographic_grids() -> None:
    assert pixel_area_m2(Affine(20, 0, 500000, 0, -20, 5400000), CRS.from_epsg(32633), 48.7) == 400
    # US survey feet: a 10 ft pixel is 9.29 m2.
    assert pixel_area_m2(Affine(10, 0, 0, 0, -10, 0), CRS.from_epsg(2263), 40.7) == pytest.approx(9.2903, abs=1e-3)
    # 0.0001 degree: about 11.12 m a side at the equator, half the area at 60 degrees.
    lonlat = Affine(0.0001, 0, 0, 0, -0.0001, 0)
    assert pixel_area_m2(lonlat, CRS.from_epsg(4326), 0.0) == pytest.approx(123.64, abs=0.01)
    assert pixel_area_m2(lonlat, CRS.from_epsg(4326), 60.0) == pytest.approx(61.82, abs=0.01)
