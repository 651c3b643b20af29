"""Per-pixel series: published chunks and models, /series over real HTTP, filters on /point and GetFeatureInfo."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import test_wms
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from scipy import ndimage
from test_end_to_end import _lonlat_of_pixel
from test_monitors import EVERY_ALGORITHM, HISTORY_END, _cube, _forest
from test_wms import Area, Site, featureinfo_params

from catalog.atomic import is_temp
from catalog.encoding import CONFIRMED_CODES, DATE_EPOCH
from catalog.errors import PublishError
from catalog.series import (
    DATES_TAG,
    MODEL_ROLE,
    NODATA,
    SCALE,
    SERIES_ROLE,
    ChunkWriter,
    _quantise,
    chunk_dates,
    read_model,
    read_observations,
    write_chunk,
    write_model,
)
from catalog.store import CatalogLayout, read_index
from catalog.validate import validate_tree
from scheduler.config import parse_monitor
from scheduler.monitors import export_model, fit_monitor, is_anomalous
from scheduler.state import load_state, state_path

from conftest import DemoRun, latest_layers, make_workspace, truth

CRS_UTM = rasterio.crs.CRS.from_epsg(32633)
TRANSFORM = rasterio.Affine(20, 0, 500000, 0, -20, 5400000)
QUANTUM = 0.5e-4 + 1e-6  # int16 storage of value * 10000 rounds to the nearest step
area, site = test_wms.area, test_wms.site  # the WMS tests' clear-cut site fixtures


def day(days: int) -> dt.date:
    return DATE_EPOCH + dt.timedelta(days=int(days))


def series_at(base: str, run: DemoRun, row: int, col: int, **params: str) -> dict:
    lon, lat = _lonlat_of_pixel(run, row, col)
    response = httpx.get(f"{base}/series/{lon},{lat}", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def curve_at(body: dict, key: str) -> tuple[float, float, float]:
    """The model's value, lower and upper band at an observation time (linear between the 5-day samples)."""
    curve = body["model"]["curve"]
    days = np.array([dt.date.fromisoformat(c["date"]).toordinal() for c in curve], dtype=float)
    when = dt.datetime.fromisoformat(key)
    t = when.date().toordinal() + when.hour / 24
    return tuple(float(np.interp(t, days, [c[k] for c in curve])) for k in ("value", "lower", "upper"))


@pytest.fixture(scope="module")
def pixels(static_run: DemoRun) -> dict[str, list[tuple[int, int]]]:
    """Interior confirmed clear-cut pixels and interior stable forest pixels (area grid rows and columns)."""
    days, forest = truth(static_run)
    status = latest_layers(static_run)["status"]
    hit = ndimage.binary_erosion(np.isin(status, CONFIRMED_CODES) & (days > 0), iterations=1)
    stable = ndimage.binary_erosion(forest & (days == 0) & (status == 0), iterations=2)
    rng = np.random.default_rng(7)

    def pick(mask: np.ndarray, n: int) -> list[tuple[int, int]]:
        rows, cols = np.nonzero(mask)
        chosen = rng.choice(len(rows), size=n, replace=False)
        return [(int(rows[i]), int(cols[i])) for i in chosen]

    return {"hit": pick(hit, 6), "stable": pick(stable, 6)}


# --- what is published -------------------------------------------------------------------------------------------


def archive_ndvi(run: DemoRun, until: dt.datetime, points: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """NDVI straight from the demo archive's bands at area pixels, with the config's cloud mask: key -> values."""
    src_cfg = run.cfg.source
    out = {}
    for item_path in sorted((src_cfg.catalog.parent / "items").glob("*/*.json")):
        item = json.loads(item_path.read_text())
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        if when > until or item["properties"]["eo:cloud_cover"] > src_cfg.max_cloud_cover:
            continue  # not searched for: never absorbed
        bands = {}
        for role, asset in (("red", src_cfg.bands["red"]), ("nir", src_cfg.bands["nir"]), ("scl", src_cfg.mask_band)):
            with rasterio.open(item_path.parent / item["assets"][asset]["href"]) as src:
                bands[role] = np.array([src.read(1, window=Window(c, r, 1, 1))[0, 0] for r, c in points], float)
        red = bands["red"] * src_cfg.scale + src_cfg.offset
        nir = bands["nir"] * src_cfg.scale + src_cfg.offset
        with np.errstate(divide="ignore", invalid="ignore"):
            ndvi = (nir - red) / (nir + red)
        valid = (bands["red"] != src_cfg.nodata) & (bands["nir"] != src_cfg.nodata)
        clear = np.isin(bands["scl"], src_cfg.mask_valid) & valid
        out[when.strftime("%Y-%m-%dT%H:%M:%S")] = np.where(clear & np.isfinite(ndvi), ndvi, np.nan)
    return out


def test_published_observations_equal_the_archive(static_run: DemoRun, static_server: str, pixels) -> None:
    points = pixels["hit"][:3] + pixels["stable"][:3]
    latest = read_index(CatalogLayout(static_run.cfg.output.stac_dir)).latest
    expected = archive_ndvi(static_run, latest.datetime, points)
    assert len(expected) > 200, "history and every update's acquisitions"
    for n, (row, col) in enumerate(points):
        body = series_at(static_server, static_run, row, col)
        got = {o["date"]: o["value"] for o in body["observations"]}
        want = {key: values[n] for key, values in expected.items() if np.isfinite(values[n])}
        assert list(got) == sorted(got), "observations are in date order, each date once"
        assert set(got) == set(want), (row, col, set(got) ^ set(want))
        error = max(abs(got[k] - want[k]) for k in want)
        assert error <= QUANTUM, (row, col, error)
        assert 150 < len(got) < len(expected), "clouds are masked out, most acquisitions are clear"
        assert body["index"] == "ndvi" and "NDVI" in body["units"]


def _expected_chunks(run: DemoRun, tile: str) -> int:
    """The history's chunk, then one per batch of acquisitions (compute.batch_acquisitions) of every update."""
    batch = run.cfg.compute.batch_acquisitions
    absorbed = [len(t.absorbed) for update in run.updates for t in update.tiles if t.tile_id == tile]
    return 1 + sum(-(-n // batch) for n in absorbed)


def test_catalog_references_series_and_model(static_run: DemoRun) -> None:
    stac_dir = static_run.cfg.output.stac_dir
    validate_tree(stac_dir / "catalog.json")
    layout = CatalogLayout(stac_dir)
    index = read_index(layout)
    for tile, item_id in index.latest.items.items():
        item_path = layout.item_path(item_id)
        item = json.loads(item_path.read_text())
        series = [a for a in item["assets"].values() if SERIES_ROLE in a["roles"]]
        (model,) = [a for a in item["assets"].values() if MODEL_ROLE in a["roles"]]
        assert len(series) == _expected_chunks(static_run, tile), "the history chunk, then one per batch of an update"
        assert model["nrt:model"]["monitor"] == "IQR" and model["nrt:model"]["convention"] == "nrt"
        assert model["nrt:monitoring_start"] == "2023-01-01"
        starts = [a["nrt:series_start"] for a in series]
        assert starts == sorted(starts) and series[0]["nrt:series_start"].startswith("2021-01-01")
        total = 0
        for asset in series:
            path = item_path.parent / asset["href"]
            assert path.resolve().is_relative_to(layout.collection_dir / "series" / tile)
            with rasterio.open(path) as src:
                assert src.dtypes[0] == "int16" and src.nodata == NODATA and src.interleaving.name == "pixel"
                # A point read decompresses one block of all bands: blocks stay small.
                height, width = src.block_shapes[0]
                assert height * width * src.count * 2 <= 512 * 1024
                assert list(src.descriptions) == chunk_dates(path)
                # Point reads only: no overview to build, ZSTD (faster than deflate at the same size).
                assert src.overviews(1) == [] and src.compression.name == "zstd"
                total += src.count
        assert (
            total == item["properties"]["nrt:history_acquisitions"] + item["properties"]["nrt:monitored_acquisitions"]
        )


def test_series_chunks_are_written_once(static_run: DemoRun) -> None:
    # Two publications of a tile share the chunks they have in common: no history is rewritten per update.
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    for tile in ("r000c000", "r000c001"):
        files = sorted((layout.collection_dir / "series" / tile).glob("*.tif"))
        assert len(files) == _expected_chunks(static_run, tile)


def test_one_model_file_per_fit_shared_by_every_publication(static_run: DemoRun) -> None:
    # Updates do not change a fitted model: every item of a tile since its fit names the same file, written once.
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    index = read_index(layout)
    assert len(index.publications) >= 3, "the fit and at least two updates, else nothing is shared"
    for tile in index.latest.items:
        hrefs = set()
        for publication in index.publications:
            item_path = layout.item_path(publication.items[tile])
            (model,) = [a for a in json.loads(item_path.read_text())["assets"].values() if MODEL_ROLE in a["roles"]]
            hrefs.add((item_path.parent / model["href"]).resolve())
        (path,) = hrefs
        assert path.parent == layout.collection_dir / "models" / tile
        assert sorted(path.parent.iterdir()) == [path], "one model file and no temp file"
        state = load_state(state_path(static_run.cfg.output.state_dir, tile))
        exported = export_model(state.monitor)
        with rasterio.open(path) as src:
            published = src.read()
        np.testing.assert_array_equal(published[:-2], exported.coefficients)
        np.testing.assert_array_equal(published[-2], exported.lower)
        np.testing.assert_array_equal(published[-1], exported.upper)


# --- the model ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "monitor",
    EVERY_ALGORITHM,
    ids=lambda m: m["algorithm"],
)
def test_published_model_predicts_as_the_monitor(monitor: dict, tmp_path: Path) -> None:
    cfg = parse_monitor(monitor)
    history = _cube("2021-01-01", "2022-12-31", seed=1)
    state = fit_monitor(cfg, history, _forest(), HISTORY_END + dt.timedelta(days=1))
    model = export_model(state)
    assert model is not None
    write_model(tmp_path / "model.tif", model, crs=CRS_UTM, transform=TRANSFORM)
    monitor_obj = state.monitor
    times = [dt.datetime(2023, 3, 1), dt.datetime(2023, 7, 14, 10, 12), dt.datetime(2024, 12, 31, 23)]
    for row, col in ((0, 0), (3, 7), (10, 11)):
        pixel = read_model(tmp_path / "model.tif", row, col)
        assert pixel is not None
        ours = pixel.form.predict(pixel.coefficients, times)
        if cfg.algorithm == "ccdc-nrt":  # compared with the model one year (365.25 days) earlier
            theirs = [monitor_obj.predict(t - dt.timedelta(days=365.25))[row, col] for t in times]
        else:
            theirs = [monitor_obj.predict(t)[row, col] for t in times]
        np.testing.assert_allclose(ours, theirs, atol=2e-5)
        assert pixel.lower < 0 < pixel.upper
    # Nothing is fitted outside the forest mask (its last row).
    assert read_model(tmp_path / "model.tif", 11, 3) is None
    if cfg.algorithm in ("iqr", "ccdc"):  # the band is exactly the monitor's own outlier test
        residuals = np.random.default_rng(3).normal(0, 0.05, (12, 12))
        outside = (residuals < model.lower) | (residuals > model.upper)
        np.testing.assert_array_equal(outside[:-1], is_anomalous(monitor_obj, residuals)[:-1])


def test_model_follows_stable_forest(static_run: DemoRun, static_server: str, pixels) -> None:
    rmses, inside = [], []
    for row, col in pixels["stable"]:
        body = series_at(static_server, static_run, row, col)
        assert body["status_name"] == "none" and body["detection_date"] is None
        residuals, within = [], []
        for o in body["observations"]:
            value, lower, upper = curve_at(body, o["date"])
            residuals.append(o["value"] - value)
            within.append(lower <= o["value"] <= upper)
        rmses.append(float(np.sqrt(np.mean(np.square(residuals)))))
        inside.append(float(np.mean(within)))
    # Measured on 40 random interior stable-forest pixels of this demo: RMSE 0.014 .. 0.033 NDVI (median 0.016),
    # 99.4 % or more of each pixel's observations inside the band. 0.04 bounds the noise the demo plants (about
    # 0.015 NDVI plus haze outliers) and is a tenth of a clear-cut's drop (about 0.5): a wrong model form fails it.
    assert max(rmses) < 0.04, rmses
    assert min(inside) >= 0.97, inside


def test_clear_cut_is_detected_after_the_event_and_falls_below_the_band(
    static_run: DemoRun, static_server: str, pixels
) -> None:
    days, _ = truth(static_run)
    for row, col in pixels["hit"]:
        body = series_at(static_server, static_run, row, col)
        event = day(days[row, col])
        detected = dt.date.fromisoformat(body["detection_date"])
        assert body["status_name"].startswith("confirmed")
        assert event <= detected <= event + dt.timedelta(days=60), (event, detected)
        assert body["monitoring_start"] == "2023-01-01" and detected >= dt.date(2023, 1, 1)
        after = [o for o in body["observations"] if dt.date.fromisoformat(o["date"][:10]) >= detected]
        below = [o["value"] < curve_at(body, o["date"])[1] for o in after]
        assert len(after) >= 5 and np.mean(below) >= 0.9, (row, col, np.mean(below))
        # Before the event the observations follow the model.
        before = [o for o in body["observations"] if dt.date.fromisoformat(o["date"][:10]) < event]
        inside = [curve_at(body, o["date"])[1] <= o["value"] <= curve_at(body, o["date"])[2] for o in before]
        assert np.mean(inside) >= 0.95


def test_series_endpoint_errors_versions_and_caching(static_run: DemoRun, static_server: str, pixels) -> None:
    row, col = pixels["hit"][0]
    lon, lat = _lonlat_of_pixel(static_run, row, col)
    url = f"{static_server}/series/{lon},{lat}"
    outside = httpx.get(f"{static_server}/series/0,0", timeout=30)
    assert outside.status_code == 404 and "outside the published area" in outside.json()["detail"]
    assert httpx.get(f"{static_server}/series/200,0", timeout=30).status_code == 422
    assert httpx.get(f"{static_server}/series/abc,0", timeout=30).status_code == 422
    assert httpx.get(url, params={"version": "20990101T000000"}, timeout=30).status_code == 404
    assert httpx.get(url, params={"version": "../x"}, timeout=30).status_code in (400, 422)
    latest = httpx.get(url, timeout=30)
    assert latest.headers["cache-control"].startswith("public, max-age=")
    assert httpx.get(url, headers={"If-None-Match": latest.headers["etag"]}, timeout=30).status_code == 304
    # An earlier version: fewer observations (it was published before the later updates), immutable.
    versions = [p.id for p in read_index(CatalogLayout(static_run.cfg.output.stac_dir)).publications]
    old = httpx.get(url, params={"version": versions[1]}, timeout=30)
    assert old.status_code == 200 and old.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(old.json()["observations"]) < len(latest.json()["observations"])
    assert old.json()["observations"] == latest.json()["observations"][: len(old.json()["observations"])]


# --- crash safety --------------------------------------------------------------------------------------------------


def test_a_chunk_written_twice_gives_one_set_of_dates(tmp_path: Path) -> None:
    keys = ["2024-01-01T10:12:00", "2024-01-06T10:12:00", "2024-01-11T10:12:00"]
    values = np.random.default_rng(1).uniform(-1, 1, (3, 40, 50)).astype(np.float32)
    values[1, 5, 5] = np.nan
    common = {"crs": CRS_UTM, "transform": TRANSFORM, "data_key": "k", "index": "ndvi"}
    first = write_chunk(tmp_path, "t", keys, values, **common)
    path = tmp_path / "series" / "t" / first
    stamp = path.stat().st_mtime_ns
    assert write_chunk(tmp_path, "t", keys, values, **common) == first, "a re-run reuses the same name"
    assert path.stat().st_mtime_ns == stamp, "and does not rewrite a file readers may hold"
    # A re-run that absorbed one more acquisition writes an overlapping chunk: each date still counts once.
    more = [*keys[1:], "2024-01-16T10:12:00"]
    second = write_chunk(tmp_path, "t", more, np.concatenate([values[1:], values[:1]]), **common)
    assert second != first and len(list((tmp_path / "series" / "t").glob("*.tif"))) == 2
    observed = read_observations([path, tmp_path / "series" / "t" / second], 5, 5)
    assert [k for k, _ in observed] == [keys[0], keys[2], more[2]], "the cloudy date is absent, none doubled"
    assert abs(observed[0][1] - values[0, 5, 5]) <= QUANTUM
    # Other settings (another index, another mask) never reuse a chunk.
    assert write_chunk(tmp_path, "t", keys, values, **{**common, "data_key": "other"}) != first


def test_chunk_dates_are_read_once_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every publication lists each chunk's dates: a chunk file is opened once, again only once replaced."""
    keys = ["2024-01-01T10:12:00", "2024-01-06T10:12:00"]
    values = np.zeros((2, 8, 8), np.float32)
    common = {"crs": CRS_UTM, "transform": TRANSFORM, "data_key": "k", "index": "ndvi"}
    path = tmp_path / "series" / "t" / write_chunk(tmp_path, "t", keys, values, **common)
    opened: list[str] = []
    real_open = rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    assert [chunk_dates(path) for _ in range(3)] == [keys] * 3
    assert opened == [str(path)]
    other = tmp_path / "series" / "t" / write_chunk(tmp_path, "t", ["2024-02-01T10:12:00"], values[:1], **common)
    other.replace(path)  # another file at the same path
    opened.clear()
    assert chunk_dates(path) == ["2024-02-01T10:12:00"] and opened == [str(path)]


@pytest.mark.parametrize(
    ("bands", "rows", "cols", "heights"),
    [(139, 100, 70, [45, 1, 30, 24]), (3, 300, 40, [100, 200]), (139, 64, 33, [64])],
    ids=["history-32px-blocks", "update-256px-blocks", "one-block"],
)
def test_a_chunk_in_row_blocks_of_any_height_is_a_cog_of_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bands: int, rows: int, cols: int, heights: list[int]
) -> None:
    """Row blocks not aligned to the block side still give each tile once, in order after the IFD: a valid COG."""
    rng = np.random.default_rng(2)
    values = rng.normal(0.6, 0.2, (bands, rows, cols)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    keys = [(dt.datetime(2020, 1, 1, 10) + dt.timedelta(days=5 * i)).isoformat() for i in range(bands)]
    windows: list[Window] = []
    write = rasterio.io.DatasetWriter.write

    def spy(self, arr, *args, window=None, **kwargs):
        windows.append(window)
        return write(self, arr, *args, window=window, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", spy)
    common = {"crs": CRS_UTM, "transform": TRANSFORM, "data_key": "k", "index": "ndvi"}
    writer = ChunkWriter(tmp_path, "t", keys, width=cols, height=rows, **common)
    with pytest.raises(PublishError, match="expected next"):
        writer.write(1, values[:, 1:2])  # rows in order only: the tiles' order in the file follows the writes
    top = 0
    for height in heights:
        writer.write(top, values[:, top : top + height])
        top += height
        assert not writer.target.exists() and all(is_temp(p) for p in writer.target.parent.iterdir())
    assert writer.close() == writer.target.name
    assert [p.name for p in writer.target.parent.iterdir()] == [writer.target.name], "no staging file left"
    valid, errors, _ = cog_validate(str(writer.target), quiet=True)
    assert valid, errors
    with rasterio.open(writer.target) as src:
        side = src.block_shapes[0][0]
        assert side == (32 if bands == 139 else 256) and src.profile["interleave"] == "pixel"
        assert src.profile["compress"] == "zstd" and src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert src.dtypes[0] == "int16" and src.nodata == NODATA and src.scales == (SCALE,) * bands
        assert list(src.descriptions) == keys and json.loads(src.tags()[DATES_TAG]) == keys
        np.testing.assert_array_equal(src.read(), _quantise(values))
        blocks = [(x, y) for y in range(-(-rows // side)) for x in range(-(-cols // side))]
        offsets = [int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1)) for x, y in blocks]
        sizes = [int(src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1)) for x, y in blocks]
    ends = [offset + size for offset, size in zip(offsets, sizes, strict=True)]
    assert ends[:-1] == offsets[1:], "each tile written once, back to back in row-major order"
    assert all(w.row_off % side == 0 and (w.height % side == 0 or w.row_off + w.height == rows) for w in windows)


def test_crash_between_chunk_and_state_save(demo_archive, tmp_path: Path, monkeypatch) -> None:
    import scheduler.pipeline as pipeline_module

    cfg = make_workspace(tmp_path / "ws", demo_archive)
    pipeline = pipeline_module.Pipeline(cfg)
    tile = pipeline.tiles[0]
    pipeline.fit_tile(tile)
    until = dt.datetime(2023, 2, 1, tzinfo=dt.UTC)
    real_save = pipeline_module.save_state

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline_module, "save_state", crash)
    with pytest.raises(OSError):
        pipeline.update_tile(tile, until)
    monkeypatch.setattr(pipeline_module, "save_state", real_save)
    folder = CatalogLayout(cfg.output.stac_dir).collection_dir / "series" / tile.id
    orphan = sorted(folder.glob("*.tif"))
    assert len(orphan) == 2, "the history chunk and the crashed update's chunk"
    assert load_state(pipeline.tile_state_path(tile)).absorbed == [], "the state did not move"
    outcome = pipeline.update_tile(tile, until)
    assert outcome.absorbed and sorted(folder.glob("*.tif")) == orphan, "the re-run reused the chunk"
    publication = pipeline.publish([tile])
    item_path = CatalogLayout(cfg.output.stac_dir).item_path(publication.items[tile.id])
    item = json.loads(item_path.read_text())
    chunks = [item_path.parent / a["href"] for a in item["assets"].values() if SERIES_ROLE in a["roles"]]
    dates = [d for c in chunks for d in chunk_dates(c)]
    assert (
        len(dates)
        == len(set(dates))
        == load_state(pipeline.tile_state_path(tile)).history_acquisitions + len(outcome.absorbed)
    )


# --- filters on /point and GetFeatureInfo ----------------------------------------------------------------------------


def test_point_honours_the_alert_filters(static_run: DemoRun, static_server: str, area: Area, site: Site) -> None:
    layers = latest_layers(static_run)
    detected = day(layers["date"][site.row, site.col])
    confidence = float(layers["confidence"][site.row, site.col])
    url = f"{static_server}/point/{site.lon},{site.lat}"

    def status(**params: str) -> dict:
        response = httpx.get(url, params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    plain = status()
    assert plain["status"] in CONFIRMED_CODES and plain["detection_date"] == detected.isoformat()
    none = {"status": 0, "status_name": "none", "detection_date": None, "magnitude": None, "confidence": None}
    dropped = status(detected_after=(detected + dt.timedelta(days=1)).isoformat())
    assert {k: dropped[k] for k in none} == none
    assert status(detected_after=detected.isoformat()) == plain, "inclusive"
    assert status(detected_before=detected.isoformat()) == plain
    assert status(detected_before=(detected - dt.timedelta(days=1)).isoformat())["status"] == 0
    assert status(min_confidence=f"{confidence - 0.01:.4f}") == plain
    assert status(min_confidence=f"{confidence + 0.01:.4f}")["status"] == 0
    assert status(stage="confirmed") == plain and status(stage="provisional") == plain
    bad = httpx.get(url, params={"min_confidence": "-1"}, timeout=30)
    assert bad.status_code == 400 and "min_confidence" in bad.json()["detail"]
    # A first detection (stage 1) is dropped by stage=provisional, kept by stage=any.
    rows, cols = np.nonzero(np.isin(layers["status"], (1, 4)))
    lon, lat = _lonlat_of_pixel(static_run, int(rows[0]), int(cols[0]))
    first = httpx.get(f"{static_server}/point/{lon},{lat}", timeout=30).json()
    assert first["status"] in (1, 4)
    assert httpx.get(f"{static_server}/point/{lon},{lat}", params={"stage": "provisional"}).json()["status"] == 0


def test_feature_info_honours_the_alert_filters(static_run: DemoRun, static_server: str, site: Site) -> None:
    layers = latest_layers(static_run)
    detected = day(layers["date"][site.row, site.col])

    def info(**extra: str) -> dict:
        response = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "application/json", **extra))
        assert response.status_code == 200, response.text
        return response.json()["features"][0]["properties"]

    plain = info()
    assert plain["status"] in CONFIRMED_CODES and plain["value"] == plain["status"]
    assert plain["confirmation_date"] is not None
    later = info(DETECTED_AFTER=(detected + dt.timedelta(days=1)).isoformat())
    assert later["status"] == 0 and later["value"] == 0 and later["detection_date"] is None
    assert later["confirmation_date"] is None and later["confidence"] is None
    assert info(detected_before=detected.isoformat())["status"] == plain["status"]
    assert info(MIN_CONFIDENCE="1e9")["status"] == 0
    assert info(Stage="confirmed")["status"] == plain["status"]
    date_layer = info(LAYERS="alert-date", QUERY_LAYERS="alert-date", DETECTED_AFTER="2100-01-01")
    assert date_layer["value"] == 0
    bad = httpx.get(f"{static_server}/wms", params=featureinfo_params(site, "application/json", STAGE="maybe"))
    assert bad.status_code == 400 and b"ServiceException" in bad.content


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantise_is_the_numpy_expression_bit_for_bit(dtype: type) -> None:
    """The one-pass kernel gives numpy's rint(float32 value / SCALE), clipped, NODATA where not finite."""
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.5, size=(20, 60, 70)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    values[0, 0, :6] = [np.inf, -np.inf, 5.0, -5.0, 0.00005, -0.00015]  # clipped both ways; halves round to even
    values[1, 0, :60] = (np.arange(60, dtype=np.float32) - 30) * np.float32(0.00005)
    values = values.astype(dtype)
    expected = np.full(values.shape, NODATA, dtype=np.int16)
    for i, band in enumerate(values.astype(np.float32)):
        ok = np.isfinite(band)
        expected[i][ok] = np.clip(np.rint(band[ok] / SCALE), NODATA + 1, 32767).astype(np.int16)
    quantised = _quantise(values[:, :, :50])  # a strided slice, as the writer passes rows of a block
    np.testing.assert_array_equal(quantised, expected[:, :, :50])
    assert quantised[0, 0, 0] == NODATA and quantised[0, 0, 2] == 32767 and quantised[0, 0, 3] == -32767
