"""Alert filters (detection dates, confidence, stage) on XYZ tiles and WMS GetMap, over real HTTP."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile
import numpy as np
import pytest
from test_end_to_end import _lonlat_of_pixel, _pixel_lonlat, _tile_png, latest_layers, truth
from test_wms import CONFIRMED_RGBA, SIZE, count, getmap_params, rgba_of

from catalog.encoding import CONFIRMED_CODES, DATE_EPOCH, STATUS_CLASSES, status_colormap
from catalog.store import CatalogLayout
from server.filters import CONFIRMED_STAGE, PROVISIONAL_STAGE, AlertFilter, FilterError, parse_filter
from server.registry import LayerRegistry
from server.settings import ServerSettings

from conftest import DemoRun, serving

TMS = morecantile.tms.get("WebMercatorQuad")
ALL_COLOURS = status_colormap(first_detections=True)
CONFIRMED_STAGE_RGBA = {ALL_COLOURS[code] for code in CONFIRMED_STAGE}
PROVISIONAL_STAGE_RGBA = {ALL_COLOURS[code] for code in PROVISIONAL_STAGE}
ALERT_RGBA = {c.rgba for c in STATUS_CLASSES if 1 <= c.code <= 8}


@dataclass(frozen=True)
class ClearCut:
    """A z15 tile over a confirmed clear-cut, the alert dates and confidences it covers, and one site pixel."""

    tile: morecantile.Tile
    max_date: dt.date  # latest first-detection date of any alert the tile may show
    max_confidence: float
    site: tuple[float, float]  # lon, lat of a confirmed clear-cut pixel
    site_date: dt.date


def day(days: int) -> dt.date:
    return DATE_EPOCH + dt.timedelta(days=int(days))


@pytest.fixture(scope="module")
def clear_cut(static_run: DemoRun) -> ClearCut:
    layers = latest_layers(static_run)
    days, _ = truth(static_run)
    rows, cols = np.nonzero(np.isin(layers["status"], CONFIRMED_CODES) & (days > 0))
    row, col = rows[len(rows) // 2], cols[len(cols) // 2]
    lon, lat = _lonlat_of_pixel(static_run, row, col)
    tile = TMS.tile(lon, lat, 15)
    # Every area pixel whose centre lies in the tile or within a margin of it (nearest resampling at its edges).
    west, south, east, north = TMS.bounds(tile)
    margin_x, margin_y = (east - west) * 0.1, (north - south) * 0.1
    lons, lats = _pixel_lonlat(static_run)
    near = (lons >= west - margin_x) & (lons < east + margin_x) & (lats >= south - margin_y) & (lats < north + margin_y)
    alerts = near & (layers["status"] >= 1) & (layers["status"] <= 8)
    return ClearCut(
        tile=tile,
        max_date=day(layers["date"][alerts].max()),
        max_confidence=float(np.nanmax(layers["confidence"][near])),
        site=(lon, lat),
        site_date=day(layers["date"][row, col]),
    )


def tile_url(base: str, tile: morecantile.Tile) -> str:
    return f"{base}/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"


# --- parsing -----------------------------------------------------------------------------------------------------


def test_parse_filter_semantics() -> None:
    assert parse_filter() is None and parse_filter(stage="ANY") is None
    f = parse_filter("2024-03-01", "2024-03-31", "2.5", "Confirmed")
    assert f == AlertFilter(dt.date(2024, 3, 1), dt.date(2024, 3, 31), 2.5, "confirmed")
    status = np.ma.masked_equal(np.array([[3, 2, 6, 0]], dtype=np.uint8), 255)
    dates = np.ma.masked_equal(np.array([[19800, 19800, 19700, 0]], dtype=np.uint16), 0)
    confidence = np.ma.masked_invalid(np.array([[3.0, 3.0, 3.0, np.nan]], dtype=np.float32))
    both = AlertFilter(dt.date(2024, 1, 1), None, 2.0, "confirmed")  # 2024-01-01 is day 19723
    np.testing.assert_array_equal(both.keep(status, dates, confidence), [[True, False, False, False]])
    provisional = AlertFilter(stage="provisional")
    np.testing.assert_array_equal(provisional.keep(status, None, None), [[True, True, True, False]])
    for args in (
        {"detected_after": "2024-02-30"},
        {"detected_after": "20240101"},
        {"detected_before": "yesterday"},
        {"detected_after": "2024-04-01", "detected_before": "2024-03-01"},
        {"min_confidence": "-1"},
        {"min_confidence": "nan"},
        {"min_confidence": "inf"},
        {"min_confidence": "high"},
        {"stage": "finished"},
    ):
        with pytest.raises(FilterError):
            parse_filter(**args)


# --- XYZ tiles ---------------------------------------------------------------------------------------------------


def test_tile_date_filters(static_server: str, clear_cut: ClearCut) -> None:
    plain = _tile_png(static_server, clear_cut.tile)
    assert count(plain, CONFIRMED_RGBA) > 100
    later = clear_cut.max_date + dt.timedelta(days=1)
    after = _tile_png(static_server, clear_cut.tile, detected_after=later.isoformat())
    assert after[..., 3].max() == 0, "every alert of the tile was detected before detected_after"
    before = _tile_png(static_server, clear_cut.tile, detected_before=clear_cut.max_date.isoformat())
    np.testing.assert_array_equal(before, plain)  # inclusive: alerts detected on that day stay
    # Only alerts detected after the site's own detection: strictly fewer confirmed pixels, none new.
    site_after = clear_cut.site_date + dt.timedelta(days=1)
    partial = _tile_png(static_server, clear_cut.tile, detected_after=site_after.isoformat())
    assert count(partial, CONFIRMED_RGBA) < count(plain, CONFIRMED_RGBA)
    kept = partial[..., 3] > 0
    np.testing.assert_array_equal(partial[kept], plain[kept])


def test_tile_confidence_and_stage_filters(static_server: str, clear_cut: ClearCut) -> None:
    plain = _tile_png(static_server, clear_cut.tile)
    above = _tile_png(static_server, clear_cut.tile, min_confidence=str(clear_cut.max_confidence + 0.01))
    assert above[..., 3].max() == 0
    np.testing.assert_array_equal(_tile_png(static_server, clear_cut.tile, min_confidence="0"), plain)

    every = _tile_png(static_server, clear_cut.tile, colormap_name="alerts-all")
    dropped = count(every, ALERT_RGBA - CONFIRMED_STAGE_RGBA)
    assert dropped > 0, "the tile must show first or provisional alerts for this test to mean anything"
    confirmed = _tile_png(static_server, clear_cut.tile, colormap_name="alerts-all", stage="confirmed")
    # Masked pixels keep their colour's RGB with alpha 0: only visible pixels count.
    assert {tuple(int(v) for v in px) for px in confirmed[confirmed[..., 3] > 0]} <= CONFIRMED_STAGE_RGBA
    assert count(confirmed, CONFIRMED_STAGE_RGBA) == count(every, CONFIRMED_STAGE_RGBA)
    provisional = _tile_png(static_server, clear_cut.tile, colormap_name="alerts-all", stage="provisional")
    assert count(provisional, PROVISIONAL_STAGE_RGBA) == count(every, PROVISIONAL_STAGE_RGBA)
    assert count(provisional, ALERT_RGBA - PROVISIONAL_STAGE_RGBA) == 0


def test_filters_reach_tilejson_etag_and_points(static_server: str, clear_cut: ClearCut) -> None:
    tilejson = httpx.get(
        f"{static_server}/layers/alerts/WebMercatorQuad/tilejson.json",
        params={"stage": "confirmed", "detected_after": "2024-01-01"},
        timeout=30,
    )
    assert tilejson.status_code == 200, tilejson.text
    assert "stage=confirmed" in tilejson.json()["tiles"][0]
    assert "detected_after=2024-01-01" in tilejson.json()["tiles"][0]
    url = tile_url(static_server, clear_cut.tile)
    plain = httpx.get(url, timeout=30)
    filtered = httpx.get(url, params={"stage": "confirmed"}, timeout=30)
    assert plain.status_code == filtered.status_code == 200
    assert plain.headers["etag"] != filtered.headers["etag"]
    # Other layers of the publication are filtered the same way (their own values, alerts' filters).
    magnitude = httpx.get(
        f"{static_server}/layers/alert-magnitude/tiles/WebMercatorQuad/{clear_cut.tile.z}/{clear_cut.tile.x}/"
        f"{clear_cut.tile.y}.png",
        params={"detected_after": (clear_cut.max_date + dt.timedelta(days=1)).isoformat()},
        timeout=30,
    )
    assert magnitude.status_code == 200
    assert rgba_of(magnitude.content)[..., 3].max() == 0
    lon, lat = clear_cut.site
    point_url = f"{static_server}/layers/alerts/point/{lon},{lat}"
    assert httpx.get(point_url, timeout=30).json()["values"][0] in CONFIRMED_CODES
    later = httpx.get(point_url, params={"detected_after": "2100-01-01"}, timeout=30).json()
    assert later["values"] == [None], "a filtered-out point has no value"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("detected_after", "2024-13-01"),
        ("detected_before", "last week"),
        ("min_confidence", "-0.5"),
        ("min_confidence", "NaN"),
        ("stage", "done"),
    ],
)
def test_bad_tile_filters_are_400(static_server: str, clear_cut: ClearCut, name: str, value: str) -> None:
    response = httpx.get(tile_url(static_server, clear_cut.tile), params={name: value}, timeout=30)
    assert response.status_code == 400, response.text
    assert name in response.json()["detail"]


# --- WMS GetMap --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """What test_wms.getmap_params needs: a point to centre the map on."""

    lon: float
    lat: float


def getmap(base: str, clear_cut: ClearCut, **extra: str) -> httpx.Response:
    return httpx.get(f"{base}/wms", params=getmap_params(_Site(*clear_cut.site), **extra), timeout=30)


def test_getmap_vendor_filters(static_server: str, clear_cut: ClearCut) -> None:
    plain = getmap(static_server, clear_cut)
    assert plain.status_code == 200, plain.text
    centre = (SIZE // 2, SIZE // 2)
    assert tuple(int(v) for v in rgba_of(plain.content)[centre]) in CONFIRMED_RGBA
    site_after = (clear_cut.site_date + dt.timedelta(days=1)).isoformat()
    gone = rgba_of(getmap(static_server, clear_cut, DETECTED_AFTER=site_after).content)
    assert gone[centre][3] == 0, "the site was detected before DETECTED_AFTER"
    kept = getmap(static_server, clear_cut, detected_before=clear_cut.site_date.isoformat())
    assert tuple(int(v) for v in rgba_of(kept.content)[centre]) in CONFIRMED_RGBA
    assert count(rgba_of(kept.content), CONFIRMED_RGBA) <= count(rgba_of(plain.content), CONFIRMED_RGBA)
    # Vendor names in any case; a confidence no alert reaches empties the map.
    empty = rgba_of(getmap(static_server, clear_cut, Min_Confidence="1e9").content)
    assert empty[..., 3].max() == 0
    confirmed = getmap(static_server, clear_cut, STAGE="confirmed")
    assert confirmed.headers["etag"] != plain.headers["etag"]
    assert count(rgba_of(confirmed.content), CONFIRMED_RGBA) == count(rgba_of(plain.content), CONFIRMED_RGBA)


@pytest.mark.parametrize(
    ("name", "value"), [("DETECTED_AFTER", "2024-1-1"), ("MIN_CONFIDENCE", "-1"), ("stage", "maybe")]
)
def test_bad_getmap_filters_are_exception_reports(
    static_server: str, clear_cut: ClearCut, name: str, value: str
) -> None:
    response = getmap(static_server, clear_cut, **{name: value})
    assert response.status_code == 400, response.text
    root = ET.fromstring(response.content)
    exception = next(el for el in root if el.tag.endswith("ServiceException"))
    assert exception.get("code") == "InvalidParameterValue"
    assert exception.get("locator") == name.upper()
    assert name.lower() in (exception.text or "")


# --- a lone tile is served from its COG ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lone_tile(static_run: DemoRun, clear_cut: ClearCut, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the catalog whose latest publication holds only the tile under the clear-cut: a one-tile area."""
    stac = tmp_path_factory.mktemp("lone") / "stac"
    shutil.copytree(static_run.cfg.output.stac_dir, stac)
    layout = CatalogLayout(stac)
    index = json.loads(layout.index_path.read_text())
    latest = index["publications"][-1]
    lon, lat = clear_cut.site
    for tile_id, item_id in latest["items"].items():
        west, south, east, north = json.loads(layout.item_path(item_id).read_text())["bbox"]
        if west <= lon <= east and south <= lat <= north:
            latest["items"] = {tile_id: item_id}
            break
    assert len(latest["items"]) == 1
    layout.index_path.write_text(json.dumps(index))
    return stac


def test_lone_tile_is_read_from_its_cog_with_the_same_pixels(
    static_server: str, lone_tile: Path, clear_cut: ClearCut
) -> None:
    """One item: tiles, filters (sibling layers, also of `date_conf` with its "_") and points read its COGs."""
    (item,) = json.loads(CatalogLayout(lone_tile).index_path.read_text())["publications"][-1]["items"].values()
    assert LayerRegistry(lone_tile).resolve("alerts").path.name == f"{item}_status.tif"
    assert LayerRegistry(lone_tile).resolve("alert-date-conf").path.name == f"{item}_date_conf.tif"
    lon, lat = clear_cut.site
    inner = TMS.tile(lon, lat, 17)  # inside the one item: both catalogs have the same pixels there
    west, south, east, north = json.loads(CatalogLayout(lone_tile).item_path(item).read_text())["bbox"]
    bounds = TMS.bounds(inner)
    assert west < bounds.left and bounds.right < east and south < bounds.bottom and bounds.top < north
    with serving(ServerSettings(stac_dir=lone_tile)) as lone:
        for params in ({}, {"detected_before": clear_cut.max_date.isoformat()}, {"min_confidence": "0.5"}):
            np.testing.assert_array_equal(_tile_png(lone, inner, **params), _tile_png(static_server, inner, **params))
        assert count(_tile_png(lone, inner), CONFIRMED_RGBA) > 10
        url = f"layers/alert-date-conf/tiles/WebMercatorQuad/{inner.z}/{inner.x}/{inner.y}.npy"
        arrays = []
        for base in (lone, static_server):
            r = httpx.get(f"{base}/{url}", params={"stage": "confirmed"}, timeout=30)
            assert r.status_code == 200, r.text
            arrays.append(np.load(io.BytesIO(r.content)))
        np.testing.assert_array_equal(arrays[0], arrays[1])
        assert (arrays[0][0] > 0).sum() > 10, "confirmed alerts keep their date_conf values"
        points = [httpx.get(f"{b}/point/{lon},{lat}", timeout=30).json() for b in (lone, static_server)]
        assert points[0] == points[1]
