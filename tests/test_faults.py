"""Faults of the outside world, on real servers on 127.0.0.1: each is survived, logged and caught up on.

A fault-injecting HTTP proxy sits in front of the real STAC API (stac-fastapi-pgstac); assets are served over
loopback HTTP (404 = the file is gone, truncated = the file on the server is cut); items with odd metadata or
values are written here. Every tile starts from the same fitted state; a clean run over the same acquisitions
is the reference the faulty runs must reach once the fault is removed (docs/faults.md).
"""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.loading import load_index
from scheduler.monitors import absorb
from scheduler.pipeline import Pipeline, RunResult
from scheduler.state import TileState, load_state

from conftest import free_port, serve_app
from stac_api import require_postgres, running_stac_api

UNTIL = dt.datetime(2023, 2, 28, 23, 59, tzinfo=dt.UTC)  # 12 acquisitions after the history (2021-2022)
BAD_DAY = "2023-01-21"  # the 5th of them
TILE_A, TILE_B = "r000c000", "r000c001"


# -- shared set-up ---------------------------------------------------------------------------------------


def workspace(root: Path, fitted: Config, **source: object) -> Pipeline:
    """A deployment starting from the fitted states, with tiny retry waits and the given source settings."""
    shutil.copytree(fitted.output.state_dir, root / "output" / "state")
    updates = {"retries": 2, "backoff_seconds": 0.01, "timeout_seconds": 5.0, **source}
    cfg = fitted.model_copy(
        update={
            "source": fitted.source.model_copy(update=updates),
            "output": fitted.output.model_copy(update={"dir": root / "output"}),
            # Tiles one after another: faults are injected in request order, into tile A's requests first.
            "compute": fitted.compute.model_copy(update={"tiles_at_once": 1}),
        }
    )
    return Pipeline(cfg)


def window_items(archive: DemoArchive, until: dt.datetime = UNTIL) -> list[pystac.Item]:
    """The demo's items between the history's end and `until`, detached, with absolute asset hrefs."""
    catalog = pystac.Catalog.from_file(str(archive.catalog_path))
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    items = []
    for item in catalog.get_items(recursive=True):
        if start <= item.datetime <= until:
            item.make_asset_hrefs_absolute()
            clone = item.clone()
            clone.clear_links()
            items.append(clone)
    return sorted(items, key=lambda i: i.datetime)


def write_catalog(root: Path, items: list[pystac.Item], collection_id: str) -> Path:
    """A static catalog of these items (asset hrefs kept as given); returns catalog.json."""
    root.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog(id="faults", description="Items written by test_faults")
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    collection = pystac.Collection(id=collection_id, description="faulty items", extent=extent, license="other")
    catalog.add_child(collection)
    for item in items:
        collection.add_item(item.clone())
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def static_pipeline(root: Path, fitted: Config, items: list[pystac.Item], **source: object) -> Pipeline:
    """A deployment reading these items from a static catalog."""
    catalog = write_catalog(root / "catalog", items, fitted.source.collection)
    return workspace(root / "ws", fitted, kind="static", catalog=catalog, **source)


def states(pipeline: Pipeline) -> dict[str, TileState]:
    """Every tile's saved state."""
    return {tile.id: load_state(pipeline.tile_state_path(tile)) for tile in pipeline.tiles}


def outcome(result: RunResult, tile_id: str):  # noqa: ANN201
    """The outcome of one tile in a run."""
    return next(t for t in result.tiles if t.tile_id == tile_id)


def assert_same_state(actual: TileState, expected: TileState) -> None:
    """Same acquisitions absorbed and every monitor array equal, bit for bit."""
    assert actual.absorbed == expected.absorbed
    monitor, reference = vars(actual.monitor.monitor), vars(expected.monitor.monitor)
    compared = 0
    for name, value in reference.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(monitor[name], value, err_msg=f"{actual.tile_id}: {name}")
            compared += 1
    for name, value in expected.monitor.extras.items():
        np.testing.assert_array_equal(actual.monitor.extras[name], value, err_msg=f"{actual.tile_id}: {name}")
    assert compared >= 5  # mask, process, beta, ...: the comparison is not vacuous


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    """Log records at exactly this level."""
    return [r for r in caplog.records if r.levelno == level]


@pytest.fixture(scope="module")
def clean(fitted: Config, demo_archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TileState]:
    """The reference: both tiles brought up to UNTIL with nothing going wrong."""
    pipeline = static_pipeline(tmp_path_factory.mktemp("clean"), fitted, window_items(demo_archive))
    result = pipeline.run_update(UNTIL)
    assert not result.failed and result.acquisitions == 12
    return states(pipeline)


# -- assets over HTTP ------------------------------------------------------------------------------------


@dataclass
class AssetServer:
    """Static files with range requests; `fail_next[path] = k` answers 503 to the next k requests of a path."""

    root: Path
    url: str = ""
    fail_next: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def faults(request: Request, call_next):  # noqa: ANN001, ANN202
            path = request.url.path
            self.requests.append(path)
            if self.fail_next.get(path, 0) > 0:
                self.fail_next[path] -= 1
                return Response("busy", status_code=503)
            return await call_next(request)

        return Starlette(
            routes=[Mount("/", StaticFiles(directory=self.root))],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=faults)],
        )


@pytest.fixture(scope="module")
def asset_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssetServer]:
    """An HTTP server of a folder the tests fill (and break)."""
    server = AssetServer(tmp_path_factory.mktemp("served"))
    with serve_app(server.app()) as url:
        server.url = url
        yield server


def http_items(archive: DemoArchive, server: AssetServer, name: str) -> list[pystac.Item]:
    """The window's items with their assets copied under the server and hrefs pointing at it.

    The item of BAD_DAY covers tile A only (its geometry), so tile B shows what 'the other tile' does.
    """
    items = window_items(archive)
    for item in items:
        for key, asset in item.assets.items():
            target = server.root / name / item.id / Path(asset.href).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(asset.href, target)
            item.assets[key].href = f"{server.url}/{name}/{item.id}/{target.name}"
    bad = next(i for i in items if i.datetime.strftime("%Y-%m-%d") == BAD_DAY)
    west, south, east, north = bad.bbox
    middle = west + (east - west) * 0.45  # tile A is the western half
    bad.geometry = {
        "type": "Polygon",
        "coordinates": [[[west, south], [middle, south], [middle, north], [west, north], [west, south]]],
    }
    bad.bbox = [west, south, middle, north]
    return items


def bad_item(items: list[pystac.Item]) -> pystac.Item:
    return next(i for i in items if i.datetime.strftime("%Y-%m-%d") == BAD_DAY)


def served_path(server: AssetServer, item: pystac.Item, key: str) -> Path:
    return server.root / item.assets[key].href.removeprefix(server.url + "/")


@pytest.fixture(scope="module")
def http_clean(
    fitted: Config, demo_archive: DemoArchive, asset_server: AssetServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TileState]:
    """The reference for the HTTP catalog: tile A absorbs BAD_DAY, tile B never sees it."""
    items = http_items(demo_archive, asset_server, "clean")
    pipeline = static_pipeline(tmp_path_factory.mktemp("http-clean"), fitted, items)
    result = pipeline.run_update(UNTIL)
    assert not result.failed
    assert len(outcome(result, TILE_A).absorbed) == 12 and len(outcome(result, TILE_B).absorbed) == 11
    return states(pipeline)


@pytest.mark.parametrize("fault", ["404", "truncated"])
def test_unreadable_asset_stops_its_tile_at_that_acquisition_and_the_next_run_catches_up(
    fault: str,
    fitted: Config,
    demo_archive: DemoArchive,
    asset_server: AssetServer,
    http_clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = http_items(demo_archive, asset_server, f"broken-{fault}")
    bad = bad_item(items)
    nir = served_path(asset_server, bad, "nir08")
    good = nir.read_bytes()
    if fault == "404":
        nir.unlink()
    else:
        nir.write_bytes(good[: len(good) // 2])
    pipeline = static_pipeline(tmp_path, fitted, items, retries=1)
    key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")

    with caplog.at_level(logging.INFO):
        first = pipeline.run_update(UNTIL)

    a, b = outcome(first, TILE_A), outcome(first, TILE_B)
    assert a.absorbed == http_clean[TILE_A].absorbed[:4]  # the four acquisitions before the bad one
    assert a.absorbed[-1] < key
    assert a.error and TILE_A in a.error and key in a.error and bad.id in a.error
    assert b.ok and b.absorbed == http_clean[TILE_B].absorbed  # the other tile carried on
    error = [r for r in records(caplog, logging.ERROR) if getattr(r, "tile", None) == TILE_A]
    assert len(error) == 1
    assert error[0].acquisition == key
    assert nir.name in error[0].cause  # the asset
    assert ("HTTP response code: 404" if fault == "404" else "Read failed") in error[0].cause
    assert bad.id in error[0].getMessage() and "after 1 retry:" in error[0].getMessage()
    retried = [r for r in records(caplog, logging.WARNING) if "retrying" in r.getMessage()]
    assert retried and all(r.tile == TILE_A for r in retried)
    assert load_state(pipeline.tile_state_path(pipeline.tiles[0])).absorbed == a.absorbed  # saved

    nir.write_bytes(good)  # the provider fixes the file; the same process runs again (GDAL's cache included)
    second = pipeline.run_update(UNTIL)
    assert not second.failed
    assert outcome(second, TILE_A).absorbed == http_clean[TILE_A].absorbed[4:]
    assert outcome(second, TILE_B).absorbed == []
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, http_clean[tile_id])


def test_transient_asset_errors_are_retried_within_the_run(
    fitted: Config,
    demo_archive: DemoArchive,
    asset_server: AssetServer,
    http_clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = http_items(demo_archive, asset_server, "flaky")
    red = "/" + served_path(asset_server, bad_item(items), "red").relative_to(asset_server.root).as_posix()
    asset_server.fail_next[red] = 2  # 503 twice, then fine: within retries = 2
    pipeline = static_pipeline(tmp_path, fitted, items, retries=2)
    with caplog.at_level(logging.WARNING):
        result = pipeline.run_update(UNTIL)
    assert not result.failed, [t.error for t in result.failed]
    assert asset_server.fail_next[red] == 0 and asset_server.requests.count(red) >= 3
    retried = [r for r in records(caplog, logging.WARNING) if "retrying" in r.getMessage()]
    assert len(retried) == 2 and all(r.tile == TILE_A and "503" in r.cause for r in retried)
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, http_clean[tile_id])


def test_an_asset_that_stays_broken_is_skipped_on_the_operators_word_then_counts_as_late(
    fitted: Config,
    demo_archive: DemoArchive,
    asset_server: AssetServer,
    http_clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = http_items(demo_archive, asset_server, "gone")
    bad = bad_item(items)
    key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")
    served_path(asset_server, bad, "scl").unlink()
    stuck = static_pipeline(tmp_path, fitted, items, retries=0)
    for _ in range(2):  # it stays broken: the tile stays where it is, run after run, and says why
        assert outcome(stuck.run_update(UNTIL), TILE_A).absorbed in (http_clean[TILE_A].absorbed[:4], [])
    assert load_state(stuck.tile_state_path(stuck.tiles[0])).absorbed == http_clean[TILE_A].absorbed[:4]

    # `nrt-alerts update --skip-acquisition <item id or day>` (or source.skip_acquisitions) gives it up.
    skipping = Pipeline(
        stuck.cfg.model_copy(update={"source": stuck.cfg.source.model_copy(update={"skip_acquisitions": [BAD_DAY]})})
    )
    result = skipping.run_update(UNTIL)
    assert not result.failed
    assert outcome(result, TILE_A).absorbed == http_clean[TILE_A].absorbed[5:]

    # Later runs without the skip see it as a late acquisition: never read (its asset is still gone), reported.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        later = stuck.run_update(UNTIL)
    assert not later.failed and outcome(later, TILE_A).skipped_late == [key]
    late = [r for r in records(caplog, logging.WARNING) if getattr(r, "cause", None) == "late item"]
    assert [(r.tile, r.acquisition) for r in late] == [(TILE_A, key)]
    assert bad.id in late[0].getMessage()
    final = states(stuck)
    assert final[TILE_A].absorbed == [k for k in http_clean[TILE_A].absorbed if k != key]
    assert_same_state(final[TILE_B], http_clean[TILE_B])


# -- items with odd metadata or values -----------------------------------------------------------------


def test_item_without_proj_metadata_is_read_from_the_assets_own_georeference(
    fitted: Config, demo_archive: DemoArchive
) -> None:
    item = window_items(demo_archive)[1]
    bare = item.clone()
    for name in [k for k in bare.properties if k.startswith("proj:")]:
        del bare.properties[name]
    bare.stac_extensions = [e for e in bare.stac_extensions if "projection" not in e]
    tile = Pipeline(fitted).tiles[0]
    expected = load_index([item], tile, fitted).values
    actual = load_index([bare], tile, fitted).values
    assert np.isfinite(expected).sum() > 10000
    np.testing.assert_array_equal(actual, expected)


def test_item_in_another_crs_is_reprojected_onto_the_tile_grid(
    fitted: Config, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    item = window_items(demo_archive)[1]
    moved = item.clone()
    for key, asset in moved.assets.items():
        with rasterio.open(asset.href) as src:
            # UTM 32N at 10 m: another zone, another grid; nearest resampling keeps every value.
            transform, width, height = calculate_default_transform(
                src.crs, "EPSG:32632", src.width, src.height, *src.bounds, resolution=10
            )
            profile = {**src.profile, "driver": "GTiff", "crs": "EPSG:32632", "transform": transform}
            profile.update(width=width, height=height, tiled=False)
            profile.pop("blockxsize", None), profile.pop("blockysize", None)
            target = tmp_path / f"{key}.tif"
            with rasterio.open(target, "w", **profile) as dst:
                reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
        asset.href = str(target)
    moved.properties.update({"proj:code": "EPSG:32632", "proj:shape": [height, width]})
    moved.properties["proj:transform"] = list(transform)[:6]
    moved.properties.pop("proj:bbox", None)
    tile = Pipeline(fitted).tiles[1]
    expected = load_index([item], tile, fitted).values
    actual = load_index([moved], tile, fitted).values
    assert rasterio.open(moved.assets["red"].href).crs.to_epsg() == 32632
    assert np.isfinite(actual).sum() == np.isfinite(expected).sum() > 10000
    np.testing.assert_array_equal(actual, expected)


def _rewrite(item: pystac.Item, folder: Path, edit: dict[str, object]) -> pystac.Item:
    """A copy of the item whose assets are rewritten by edit[key](array) -> (array, dtype, nodata)."""
    copy = item.clone()
    folder.mkdir(parents=True, exist_ok=True)
    for key, change in edit.items():
        with rasterio.open(copy.assets[key].href) as src:
            data, profile = src.read(1), dict(src.profile)
        array, dtype, nodata = change(data)
        profile.update(driver="GTiff", dtype=dtype, nodata=nodata, tiled=False)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        target = folder / f"{key}.tif"
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(array.astype(dtype), 1)
        copy.assets[key].href = str(target)
        for band in copy.assets[key].extra_fields.get("raster:bands", []):
            band.update(data_type=dtype, nodata=nodata)
            if nodata is None:
                del band["nodata"]
    return copy


def _monitor_arrays(state: TileState) -> dict[str, np.ndarray]:
    arrays = {k: v.copy() for k, v in vars(state.monitor.monitor).items() if isinstance(v, np.ndarray)}
    arrays.update({f"extra_{k}": v.copy() for k, v in state.monitor.extras.items()})
    return arrays


def test_all_cloud_and_all_nodata_acquisitions_are_absorbed_without_changing_any_pixel(
    fitted: Config, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    pipeline = Pipeline(fitted)
    tile = pipeline.tiles[0]
    item = window_items(demo_archive)[1]
    cloudy = _rewrite(item, tmp_path / "cloud", {"scl": lambda a: (np.full_like(a, 9), "uint8", 0)})  # SCL 9: cloud
    empty = _rewrite(
        item, tmp_path / "nodata", {k: lambda a: (np.zeros_like(a), "uint16", 0) for k in ("red", "nir08")}
    )
    state = load_state(pipeline.tile_state_path(tile))
    # nrt creates detection_date (all zeros) on the first monitor() call of a fitted monitor: not a pixel change.
    state.monitor.monitor.detection_date = np.zeros_like(state.monitor.monitor.mask, dtype=np.uint16)
    before = _monitor_arrays(state)
    for i, acquisition in enumerate((cloudy, empty)):
        values = load_index([acquisition], tile, fitted).values[0]
        assert values.shape == (128, 128) and not np.isfinite(values).any()
        absorb(state.monitor, values, dt.datetime(2023, 1, 6 + i))
    after = _monitor_arrays(state)
    assert after.keys() == before.keys() and len(after) >= 8
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_nan_and_inf_reflectances_are_no_observation(fitted: Config, demo_archive: DemoArchive, tmp_path: Path) -> None:
    pipeline = Pipeline(fitted)
    tile = pipeline.tiles[0]
    item = window_items(demo_archive)[1]
    bad = np.zeros((128, 256), dtype=bool)
    bad[10:20, 10:20] = True  # tile A's pixels

    def spoil(value: float):  # noqa: ANN202
        def edit(a: np.ndarray) -> tuple[np.ndarray, str, None]:
            out = a.astype(np.float32)  # float32 DN: reflectance = DN * scale + offset still applies
            out[bad] = value
            return out, "float32", None

        return edit

    expected = load_index([item], tile, fitted).values[0]
    for n, (red, nir) in enumerate(((np.inf, None), (None, np.inf), (np.nan, None), (-np.inf, np.inf))):
        edits = {key: spoil(value) for key, value in (("red", red), ("nir08", nir)) if value is not None}
        spoiled = _rewrite(item, tmp_path / str(n), edits)
        values = load_index([spoiled], tile, fitted).values[0]
        assert np.isnan(values[10:20, 10:20]).all(), (red, nir)
        outside = np.ones_like(values, dtype=bool)
        outside[10:20, 10:20] = False
        np.testing.assert_array_equal(values[outside], expected[outside])
        assert not np.isinf(values).any()


def test_two_granules_on_one_day_are_one_acquisition_the_earlier_wins_where_it_has_data(
    fitted: Config, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    pipeline = Pipeline(fitted)
    tile = pipeline.tiles[0]
    first_day, other_day = window_items(demo_archive)[1:3]
    west = np.zeros((128, 256), dtype=bool)
    west[:, :64] = True  # the earlier granule has no data in tile A's western half
    cut = {k: (lambda a: (np.where(west, 0, a), str(a.dtype), 0)) for k in first_day.assets}
    early = _rewrite(first_day, tmp_path / "early", cut)
    late = other_day.clone()
    late.id = f"{first_day.id}_B"
    late.datetime = first_day.datetime + dt.timedelta(seconds=40)  # the next granule of the same pass
    fused = load_index([late, early], tile, fitted)
    assert fused.sizes["time"] == 1
    assert str(fused.time.values[0])[:19] == first_day.datetime.strftime("%Y-%m-%dT%H:%M:%S")
    from_early = load_index([first_day], tile, fitted).values[0]
    from_late = load_index([other_day], tile, fitted).values[0]
    values = fused.values[0]
    np.testing.assert_array_equal(values[:, 64:], from_early[:, 64:])  # both have data: the earlier granule wins
    np.testing.assert_array_equal(values[:, :64], from_late[:, :64])  # the later fills the earlier's nodata
    assert not np.array_equal(from_early[:, 64:], from_late[:, 64:], equal_nan=True)


def test_late_item_is_not_absorbed_and_is_reported_every_run(
    fitted: Config,
    demo_archive: DemoArchive,
    clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = window_items(demo_archive)
    late = bad_item(items)
    key = late.datetime.strftime("%Y-%m-%dT%H:%M:%S")
    pipeline = static_pipeline(tmp_path, fitted, [i for i in items if i is not late])
    assert not pipeline.run_update(UNTIL).failed
    write_catalog(tmp_path / "catalog", items, fitted.source.collection)  # it turns up after the newer ones
    with caplog.at_level(logging.WARNING):
        result = pipeline.run_update(UNTIL)
    assert not result.failed and result.acquisitions == 0
    assert [t.skipped_late for t in result.tiles] == [[key], [key]]
    warned = [r for r in records(caplog, logging.WARNING) if getattr(r, "cause", None) == "late item"]
    assert sorted((r.tile, r.acquisition) for r in warned) == [(TILE_A, key), (TILE_B, key)]
    for tile_id, state in states(pipeline).items():
        assert state.absorbed == [k for k in clean[tile_id].absorbed if k != key]


# -- the STAC API behind a fault-injecting proxy ---------------------------------------------------------


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards to the STAC API; the first `remaining` requests get `mode` instead: 500, garbage, delay, reset."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream.removeprefix("http://")
        self.mode, self.remaining, self.delay, self.requests = "", 0, 2.0, 0
        self.lock = threading.Lock()

    def inject(self, mode: str, count: int) -> None:
        with self.lock:
            self.mode, self.remaining = mode, count

    def take_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.remaining > 0:
                self.remaining -= 1
                return self.mode
            return None

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that timed out leaves a broken pipe behind: expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.server.take_fault()
        if fault == "500":
            return self._send(500, b'{"code": "InternalServerError", "description": "injected"}')
        if fault == "garbage":
            return self._send(200, b'{"type": "FeatureCollection", "features": [{"id": ')
        if fault == "reset":
            self.close_connection = True
            return None  # no answer at all: the client sees the connection closed
        if fault == "delay":
            time.sleep(self.server.delay)
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "accept-encoding")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self._send(response.status, data, response.getheader("Content-Type", "application/json"))
        return None


@pytest.fixture(scope="module")
def stac_proxy(demo_archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    """The demo archive in stac-fastapi-pgstac, behind the fault proxy."""
    require_postgres()
    with running_stac_api(demo_archive.catalog_path, tmp_path_factory.mktemp("faults-pgstac")) as url:
        proxy = FaultProxy(url)
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            proxy.shutdown()
            proxy.server_close()


def api_pipeline(root: Path, fitted: Config, proxy: FaultProxy) -> Pipeline:
    return workspace(root, fitted, kind="stac-api", url=proxy.url, catalog=None, retries=2, timeout_seconds=0.5)


@pytest.mark.pgstac
@pytest.mark.parametrize("mode", ["500", "garbage", "delay", "reset"])
def test_stac_api_fault_is_retried_and_the_run_completes(
    mode: str,
    fitted: Config,
    stac_proxy: FaultProxy,
    clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = api_pipeline(tmp_path, fitted, stac_proxy)
    stac_proxy.inject(mode, 1)
    with caplog.at_level(logging.WARNING):
        result = pipeline.run_update(UNTIL)
    assert stac_proxy.remaining == 0
    assert not result.failed, [t.error for t in result.failed]
    retried = [r for r in records(caplog, logging.WARNING) if "retry" in r.getMessage()]
    assert len(retried) == 1, [r.getMessage() for r in caplog.records]
    expected_cause = {"500": "500", "garbage": "malformed answer", "delay": "timed out", "reset": "connection"}[mode]
    assert expected_cause.lower() in retried[0].cause.lower()
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, clean[tile_id])


@pytest.mark.pgstac
@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_stac_api_down_fails_one_tile_the_other_goes_on_and_the_next_run_catches_up(
    mode: str,
    fitted: Config,
    stac_proxy: FaultProxy,
    clean: dict[str, TileState],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = api_pipeline(tmp_path, fitted, stac_proxy)
    stac_proxy.inject(mode, 3)  # 1 try + 2 retries of tile A's first request; tile B then finds it back up
    with caplog.at_level(logging.WARNING):
        first = pipeline.run_update(UNTIL)
    a, b = outcome(first, TILE_A), outcome(first, TILE_B)
    assert not a.ok and a.absorbed == [] and "after 2 retries" in a.error
    assert b.ok and b.absorbed == clean[TILE_B].absorbed
    error = [r for r in records(caplog, logging.ERROR) if getattr(r, "tile", None) == TILE_A]
    assert len(error) == 1 and stac_proxy.url in error[0].getMessage()
    assert error[0].acquisition.startswith("2022-12-31T23:59:59Z/2023-02-28")  # the searched span
    assert ("500" in error[0].cause) if mode == "500" else error[0].cause

    second = pipeline.run_update(UNTIL)  # the API is back
    assert not second.failed
    assert outcome(second, TILE_A).absorbed == clean[TILE_A].absorbed and outcome(second, TILE_B).absorbed == []
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, clean[tile_id])


def test_stac_api_refusing_connections_fails_each_tile_with_the_cause_and_changes_nothing(
    fitted: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    pipeline = workspace(tmp_path, fitted, kind="stac-api", url=down, catalog=None, retries=1)
    before = states(pipeline)
    with caplog.at_level(logging.WARNING):
        result = pipeline.run_update(UNTIL)
    assert [t.tile_id for t in result.failed] == [TILE_A, TILE_B] and result.acquisitions == 0
    errors = records(caplog, logging.ERROR)
    assert [r.tile for r in errors] == [TILE_A, TILE_B]
    assert all("refused" in r.cause.lower() and r.acquisition.endswith("2023-02-28T23:59:00Z") for r in errors)
    retried = [r for r in records(caplog, logging.WARNING) if "retry 1" in r.getMessage()]
    assert len(retried) == 2 and down in retried[0].getMessage()
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, before[tile_id])
