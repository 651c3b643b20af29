"""The whole chain on the demo: fit, fast-forward, updates, publication, and tiles over HTTP."""

from __future__ import annotations

import datetime as dt
import io
import json

import httpx
import morecantile
import numpy as np
import rasterio
from rasterio.warp import transform
from rio_cogeo.cogeo import cog_validate

from catalog.encoding import CONFIRMED_CODES, STATUS_CLASSES, Status, days_since_epoch, status_colormap
from catalog.store import CatalogLayout, read_index
from catalog.tree import item_month
from catalog.validate import validate_tree

from conftest import RUN_STEPS, DemoRun, latest_layers, truth

TMS = morecantile.tms.get("WebMercatorQuad")
ALERT_RGBA = {c.rgba for c in STATUS_CLASSES if 1 <= c.code <= 8}
CONFIRMED_RGBA = {status_colormap()[code] for code in CONFIRMED_CODES}


def test_alerts_match_ground_truth(static_run: DemoRun) -> None:
    layers = latest_layers(static_run)
    days, forest = truth(static_run)
    status = layers["status"]
    disturbed = days > 0
    stable = forest & ~disturbed
    confirmed = np.isin(status, CONFIRMED_CODES)
    assert disturbed.sum() > 200, "the demo must plant real clear-cuts"
    detected = confirmed[disturbed].mean()
    false_alarms = confirmed[stable].mean()
    assert detected >= 0.95, f"only {detected:.1%} of clear-cut pixels confirmed"
    assert false_alarms <= 0.02, f"{false_alarms:.2%} of stable forest pixels confirmed"
    # Outside the forest mask nothing is monitored, so nothing alerts there.
    assert np.all(status[~forest & (status != Status.NODATA)] == Status.NOT_MONITORED)
    # Detection dates of true detections are close to the planted date: median lag within 20 days.
    lag = layers["date"][disturbed & confirmed].astype(int) - days[disturbed & confirmed].astype(int)
    assert 0 <= np.median(lag) <= 20
    # Confirmation comes after the first anomalous observation, within a few revisits (boundary = 3).
    confirmed_on = layers["confirmed"][disturbed & confirmed].astype(int)
    first_seen = layers["date"][disturbed & confirmed].astype(int)
    assert np.all(confirmed_on >= first_seen) and np.median(confirmed_on - first_seen) <= 30
    # Magnitude of a clear-cut is a large NDVI drop.
    assert np.nanmedian(layers["magnitude"][disturbed & confirmed]) < -0.3
    # The GFW-style band: confidence digit 3 or 4 and the detection day counted from 2014-12-31.
    date_conf = layers["date_conf"][confirmed].astype(int)
    assert set(np.unique(date_conf // 10000)) <= {3, 4}
    np.testing.assert_array_equal(date_conf % 10000, layers["date"][confirmed].astype(int) - 16435)


def test_every_update_published_a_version(static_run: DemoRun) -> None:
    index = read_index(CatalogLayout(static_run.cfg.output.stac_dir))
    # fit + three updates that each found new acquisitions
    assert len(index.publications) == 1 + len(RUN_STEPS)
    assert all(u.acquisitions > 0 and not u.failed for u in static_run.updates)
    assert index.latest.datetime.date() <= RUN_STEPS[-1].date()
    assert set(index.latest.items) == {"r000c000", "r000c001"}


def test_catalog_validates_and_cogs_are_valid(static_run: DemoRun) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    count = validate_tree(stac_dir / "catalog.json")
    layout = CatalogLayout(stac_dir)
    index = read_index(layout)
    months = {
        item_month(json.loads(layout.item_path(i).read_text())) for p in index.publications for i in p.items.values()
    }
    # catalog, collection, a catalog per month of the items, an item per tile and version
    assert count == 2 + len(months) + 2 * len(index.publications)
    item_path = next((stac_dir / "alerts" / "items").glob("*/*.json"))
    item = json.loads(item_path.read_text())
    assert {"status", "date", "confirmed", "magnitude", "confidence", "date_conf"} <= set(item["assets"])
    classes = item["assets"]["status"]["classification:classes"]
    assert {c["value"] for c in classes} >= {0, 3, 6, 255}
    assert item["properties"]["proj:code"] == "EPSG:32633"
    assert item["assets"]["thumbnail"]["type"] == "image/png"
    for asset in (a for a in item["assets"].values() if a["type"].startswith("image/tiff")):
        path = item_path.parent / asset["href"]
        valid, errors, _ = cog_validate(str(path), quiet=True)
        assert valid, errors
        with rasterio.open(path) as src:
            # Series files (observations, model) are only point-read: they carry no overview (catalog/series.py).
            point_read = {"time-series", "model"} & set(asset.get("roles", []))
            assert bool(src.overviews(1)) != bool(point_read), f"{path.name}: overviews {src.overviews(1)}"
            assert src.crs.to_epsg() == 32633


def test_no_new_acquisition_changes_nothing(static_run: DemoRun) -> None:
    state_dir = static_run.cfg.output.state_dir
    before = {p.name: p.read_bytes() for p in state_dir.glob("*.nc")}
    index_before = static_run.pipeline.publisher.layout.index_path.read_bytes()
    result = static_run.pipeline.run_update(RUN_STEPS[-1])
    assert result.acquisitions == 0 and result.publication is None
    assert {p.name: p.read_bytes() for p in state_dir.glob("*.nc")} == before
    assert static_run.pipeline.publisher.layout.index_path.read_bytes() == index_before


def _tile_png(base: str, tile: morecantile.Tile, **params: str) -> np.ndarray:
    """Fetch a PNG tile over HTTP and return it as (rows, cols, 4) RGBA."""
    response = httpx.get(
        f"{base}/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png", params=params, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with rasterio.MemoryFile(io.BytesIO(response.content)) as mem, mem.open() as src:
        return np.moveaxis(src.read(), 0, -1)


def _colours(rgba: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in px) for px in rgba.reshape(-1, 4)}


def _pixel_lonlat(run: DemoRun) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of every area pixel centre."""
    with rasterio.open(next(run.cfg.output.stac_dir.glob("alerts/mosaics/*/status.vrt"))) as src:
        rows, cols = np.mgrid[0 : src.height, 0 : src.width]
        xs, ys = src.transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
        lon, lat = transform(src.crs, "EPSG:4326", xs, ys)
        shape = (src.height, src.width)
    return np.reshape(lon, shape), np.reshape(lat, shape)


def _lonlat_of_pixel(run: DemoRun, row: int, col: int) -> tuple[float, float]:
    lon, lat = _pixel_lonlat(run)
    return float(lon[row, col]), float(lat[row, col])


def test_tiles_over_http_show_alerts_where_disturbed(static_run: DemoRun, static_server: str) -> None:
    days, forest = truth(static_run)
    status = latest_layers(static_run)["status"]
    # The tile over the biggest confirmed clear-cut pixel cluster shows the confirmed-alert colours.
    rows, cols = np.nonzero(np.isin(status, CONFIRMED_CODES) & (days > 0))
    centre = len(rows) // 2
    lon, lat = _lonlat_of_pixel(static_run, rows[centre], cols[centre])
    tile = TMS.tile(lon, lat, 15)
    rgba = _tile_png(static_server, tile)
    confirmed_px = sum(1 for px in map(tuple, rgba.reshape(-1, 4)) if px in CONFIRMED_RGBA)
    assert confirmed_px > 100, f"tile {tile} has {confirmed_px} confirmed-alert pixels"
    # No alert is transparent: pixels that are not alerts have alpha 0.
    assert not (_colours(rgba) - ALERT_RGBA - {(0, 0, 0, 0)})


def test_tile_over_stable_forest_has_no_alert(static_run: DemoRun, static_server: str) -> None:
    status = latest_layers(static_run)["status"]
    lon, lat = _pixel_lonlat(static_run)
    days, forest = truth(static_run)
    stable = forest & (days == 0)
    # z16 tiles (about 20 x 20 px here) lying wholly over forest that was never disturbed.
    candidates = []
    for tile in TMS.tiles(lon.min(), lat.min(), lon.max(), lat.max(), [16]):
        west, south, east, north = TMS.bounds(tile)
        inside = (lon >= west) & (lon < east) & (lat >= south) & (lat < north)
        if inside.sum() > 200 and np.all(stable[inside]):
            alerting = np.isin(status[inside], [2, 3, 5, 6, 7, 8]).any()
            candidates.append((alerting, -int(inside.sum()), tile))
    assert len(candidates) >= 5, "the demo has too little undisturbed forest"
    clean = sorted(c for c in candidates if not c[0])
    assert len(clean) >= 0.8 * len(candidates), f"{len(candidates) - len(clean)} stable tiles carry alerts"
    best = clean[0][2]
    rgba = _tile_png(static_server, best)
    assert rgba[..., 3].max() == 0, "stable forest must render fully transparent"
    # The same tile in the context style is opaque forest green: the layer is really there.
    context = _tile_png(static_server, best, colormap_name="context")
    assert (context[..., 3] == 255).mean() > 0.5


def test_point_query_decodes_an_alert(static_run: DemoRun, static_server: str) -> None:
    days, _ = truth(static_run)
    layers = latest_layers(static_run)
    rows, cols = np.nonzero(np.isin(layers["status"], CONFIRMED_CODES) & (days > 0))
    row, col = rows[0], cols[0]
    lon, lat = _lonlat_of_pixel(static_run, row, col)
    body = httpx.get(f"{static_server}/point/{lon},{lat}", timeout=30).json()
    assert body["status"] == int(layers["status"][row, col])
    assert body["status_name"].startswith("confirmed")
    planted = int(days[row, col])
    detected = days_since_epoch(dt.date.fromisoformat(body["detection_date"]))
    assert abs(detected - planted) <= 30
    assert body["magnitude"] < 0


def test_stac_served_with_cors_and_ranges(static_run: DemoRun, static_server: str) -> None:
    catalog = httpx.get(f"{static_server}/stac/catalog.json", headers={"Origin": "https://example.org"})
    assert catalog.status_code == 200
    assert catalog.headers["access-control-allow-origin"] in ("*", "https://example.org")
    assert catalog.json()["links"][1]["href"] == "./alerts/collection.json"
    item = next((static_run.cfg.output.stac_dir / "alerts" / "items").glob("*/*_status.tif"))
    rel = item.relative_to(static_run.cfg.output.stac_dir).as_posix()
    part = httpx.get(f"{static_server}/stac/{rel}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.content[:4] in (b"II*\x00", b"MM\x00*")
    health = httpx.get(f"{static_server}/healthz").json()
    assert health["status"] == "ok" and health["publications"] == 1 + len(RUN_STEPS)
    page = httpx.get(f"{static_server}/")
    assert page.status_code == 200 and "maplibre-gl" in page.text
    assert httpx.get(f"{static_server}/static/vendor/maplibre-gl-5.24.1/maplibre-gl.js").status_code == 200
