"""Window reads of assets on the tile grid give odc-stac's own load: the same Dataset, or odc-stac reads it."""

from __future__ import annotations

import datetime as dt
import resource
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.windows import Window
from test_faults import _rewrite, window_items

from scheduler import aligned, loading
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline

from conftest import make_workspace


@pytest.fixture(scope="module")
def cfg(demo_archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A deployment of the demo (two 128 px tiles), one thread per load."""
    cfg = make_workspace(tmp_path_factory.mktemp("aligned"), demo_archive)
    return cfg.model_copy(update={"compute": cfg.compute.model_copy(update={"threads": 1})})


def both_ways(
    items: list[pystac.Item], cfg: Config, tile_index: int, monkeypatch: pytest.MonkeyPatch, threads: int = 1
) -> tuple[xr.Dataset, xr.Dataset, list[bool]]:
    """The load through window reads (and whether they answered), and through odc-stac alone."""
    cfg = cfg.model_copy(update={"compute": cfg.compute.model_copy(update={"threads": threads})})
    tile = Pipeline(cfg).tiles[tile_index]
    answered: list[bool] = []
    real = aligned.load_on_grid

    def spy(*args: object, **kwargs: object) -> xr.Dataset | None:
        ds = real(*args, **kwargs)
        answered.append(ds is not None)
        return ds

    with monkeypatch.context() as m:
        m.setattr(loading, "load_on_grid", spy)
        windowed = loading._read(items, tile, cfg, ())
    with monkeypatch.context() as m:
        m.setattr(loading, "load_on_grid", lambda *args, **kwargs: None)
        odc = loading._read(items, tile, cfg, ())
    return windowed, odc, answered


def assert_same(windowed: xr.Dataset, odc: xr.Dataset) -> None:
    """Identical values, coordinates, attributes, dtypes and encodings."""
    xr.testing.assert_identical(windowed, odc)
    for name, var in odc.data_vars.items():
        assert windowed[name].dtype == var.dtype
        assert windowed[name].encoding.get("grid_mapping") == var.encoding.get("grid_mapping")
    assert windowed.indexes["time"].dtype == odc.indexes["time"].dtype


@pytest.mark.parametrize(("tile_index", "threads"), [(0, 1), (1, 2)])
def test_demo_dates_load_as_odc_stac_loads_them(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch, tile_index: int, threads: int
) -> None:
    items = window_items(demo_archive)[:8]
    windowed, odc, answered = both_ways(items, cfg, tile_index, monkeypatch, threads)
    assert answered == [True]
    assert windowed.sizes["time"] == 8 and int((windowed["red"] > 0).sum()) > 8 * 128 * 100
    assert_same(windowed, odc)


def test_an_item_without_one_of_the_assets_loads_as_odc_stac_loads_it(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The missing asset's date holds the band's nodata, not what the load's memory held before."""
    items = [item.clone() for item in window_items(demo_archive)[:4]]
    del items[2].assets["scl"]
    windowed, odc, answered = both_ways(items, cfg, 0, monkeypatch)
    assert answered == [True]
    assert int(windowed["scl"][2].max()) == int(windowed["scl"].attrs.get("nodata", 0))
    assert int((windowed["scl"][1] > 0).sum()) > 128 * 100
    assert_same(windowed, odc)


def test_two_granules_of_a_day_fuse_as_odc_stac_fuses_them(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The earlier granule's nodata filled by the later one's pixels, one date stamped with the earlier's time."""
    first_day, other_day = window_items(demo_archive)[1:3]
    west = np.zeros((128, 256), dtype=bool)
    west[:, :64] = True
    early = _rewrite(
        first_day,
        tmp_path / "early",
        {k: (lambda a: (np.where(west, 0, a), str(a.dtype), 0)) for k in first_day.assets},
    )
    late = other_day.clone()
    late.id = f"{first_day.id}_B"
    late.datetime = first_day.datetime + dt.timedelta(seconds=40)
    windowed, odc, answered = both_ways([late, early], cfg, 0, monkeypatch)
    assert answered == [True] and windowed.sizes["time"] == 1
    with rasterio.open(other_day.assets["red"].href) as src:
        assert np.array_equal(windowed["red"].values[0][:, :64], src.read(1)[:, :64])
    assert_same(windowed, odc)


def crop(item: pystac.Item, folder: Path, rows: slice, cols: slice, shift: float = 0.0) -> pystac.Item:
    """The item with its assets cut to a window (and moved by `shift` pixels east): partial cover of a tile."""
    copy = item.clone()
    folder.mkdir(parents=True, exist_ok=True)
    for key, asset in copy.assets.items():
        with rasterio.open(asset.href) as src:
            window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
            data, profile = src.read(1, window=window), dict(src.profile)
            transform = src.window_transform(window) @ Affine.translation(shift, 0)
        profile.update(driver="GTiff", width=data.shape[1], height=data.shape[0], transform=transform, tiled=False)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        target = folder / f"{key}.tif"
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(data, 1)
        asset.href = str(target)
    for name in [k for k in copy.properties if k.startswith("proj:")]:
        del copy.properties[name]  # odc-stac reads the georeference from the asset, as for any item without proj
    return copy


def test_an_asset_covering_part_of_the_tile_leaves_nodata_around_it(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    item = window_items(demo_archive)[1]
    part = crop(item, tmp_path / "part", slice(16, 100), slice(32, 200))  # across both tiles' border at column 128
    for tile_index in (0, 1):
        windowed, odc, answered = both_ways([part], cfg, tile_index, monkeypatch)
        assert answered == [True]
        red = windowed["red"].values[0]
        covered = np.zeros((128, 256), dtype=bool)
        covered[16:100, 32:200] = True
        covered = covered[:, 128 * tile_index : 128 * (tile_index + 1)]
        assert (red[~covered] == 0).all() and (red[covered] != 0).mean() > 0.95
        assert_same(windowed, odc)


def test_assets_off_the_grid_are_left_to_odc_stac(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Half a pixel off, no nodata declared in the file, a float band: odc-stac reads (and resamples) them."""
    item = window_items(demo_archive)[1]
    cases = {
        "shifted": crop(item, tmp_path / "shifted", slice(0, 128), slice(0, 256), shift=0.5),
        "no nodata": _rewrite(item, tmp_path / "none", {"red": lambda a: (a, "uint16", None)}),
        "float": _rewrite(item, tmp_path / "float", {"red": lambda a: (a.astype(np.float32), "float32", 0)}),
    }
    for case, moved in cases.items():
        windowed, odc, answered = both_ways([moved], cfg, 0, monkeypatch)
        assert answered == [False], case
        assert_same(windowed, odc)


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths aligned opens from now on, in order."""
    opened: list[str] = []
    real_open = rasterio.open

    def counting_open(path: str, *args: object, **kwargs: object) -> rasterio.io.DatasetReader:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(aligned.rasterio, "open", counting_open)
    return opened


def _two_tiles(cfg: Config, demo_archive: DemoArchive, dates: int) -> tuple[list, list, list, list[str]]:
    """The first `dates` items, the first two tiles, each tile's load without sharing, and the assets' paths."""
    items = window_items(demo_archive)[:dates]
    tiles = Pipeline(cfg).tiles[:2]
    alone = [loading._read(items, tile, cfg, ()) for tile in tiles]
    assets = [item.assets[name].get_absolute_href() for item in items for name in ("red", "nir08", "scl")]
    return items, tiles, alone, assets


def test_tiles_side_by_side_share_their_open_assets(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both tiles' loads inside shared_datasets: each asset opened once, the same pixels as without sharing."""
    items, tiles, alone, assets = _two_tiles(cfg, demo_archive, 6)
    opened = _count_opens(monkeypatch)
    with aligned.shared_datasets():
        shared = [loading._read(items, tile, cfg, ()) for tile in tiles]
        assert aligned._shared is not None and aligned._shared._open  # kept open for the next tile
    assert aligned._shared is None  # closed with the block
    assert sorted(path for path in opened if path in assets) == sorted(assets)  # once each, for both tiles
    for ours, theirs in zip(shared, alone, strict=True):
        xr.testing.assert_identical(ours, theirs)


def test_tiles_loading_at_the_same_time_read_what_they_read_alone(
    cfg: Config, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tiles' loads on two threads: the same pixels as alone; an asset busy for one is read later, not twice."""
    items, tiles, alone, assets = _two_tiles(cfg, demo_archive, 8)
    opened = _count_opens(monkeypatch)
    for _ in range(3):
        opened.clear()
        with aligned.shared_datasets(), ThreadPoolExecutor(2) as pool:
            shared = list(pool.map(lambda tile: loading._read(items, tile, cfg, ()), tiles))
        for ours, theirs in zip(shared, alone, strict=True):
            xr.testing.assert_identical(ours, theirs)
        assert set(assets) <= set(opened) and max(opened.count(a) for a in assets) <= 2


def test_a_shared_dataset_is_reopened_when_its_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "asset.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint16", "crs": "EPSG:32633"}
    profile["transform"] = Affine(20, 0, 500000, 0, -20, 5400000)
    for value in (1, 2):
        staged = tmp_path / f"staged-{value}.tif"
        with rasterio.open(staged, "w", **profile) as dst:
            dst.write(np.full((1, 4, 4), value, dtype=np.uint16))
        staged.replace(path)  # a new file at the same path, as an archive rewriting an asset would
        if value == 1:
            shared = aligned.SharedDatasets(capacity=1)
            with shared.reading(str(path)) as src:
                assert src.read(1)[0, 0] == 1
    with shared.reading(str(path)) as src:
        assert src.read(1)[0, 0] == 2  # not the old handle's pixels
    assert len(shared._open) == 1  # capacity 1: the replaced file's dataset was closed
    (first,) = next(iter(shared._open.values())).idle
    with shared.reading(str(path)) as src:
        assert src is first  # the same file again: the same dataset
    shared.close()
    assert first.closed and not shared._open


def test_threads_reading_one_asset_at_once_never_share_a_dataset_nor_wait(tmp_path: Path) -> None:
    """Two tiles reading in step: the second opens its own dataset instead of waiting; both stay open for later."""
    path = tmp_path / "asset.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint16", "crs": "EPSG:32633"}
    with rasterio.open(path, "w", **profile, transform=Affine(20, 0, 500000, 0, -20, 5400000)) as dst:
        dst.write(np.full((1, 4, 4), 7, dtype=np.uint16))
    shared = aligned.SharedDatasets(per_asset=2)
    both_inside = threading.Barrier(3, timeout=10)
    used: list[object] = []

    def read() -> None:
        with shared.reading(str(path)) as src:
            used.append(src)
            both_inside.wait()  # each thread holds its dataset while the other reads: no turn-taking
            assert src.read(1)[0, 0] == 7
            both_inside.wait()

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    both_inside.wait()
    both_inside.wait()
    for t in threads:
        t.join(timeout=10)
    assert len(used) == 2 and used[0] is not used[1]
    with shared.reading(str(path)) as held, shared.reading(str(path)) as other:
        assert held is not other  # both idle ones in use now
        with pytest.raises(aligned.Busy), shared.reading(str(path), wait=False):
            pass  # without `wait`, the caller hears it would need a third
    idle = next(iter(shared._open.values())).idle
    assert sorted(map(id, idle)) == sorted(map(id, used))  # both kept for the next reads
    for _ in range(3):  # one thread alone: an idle one again and again, no third open
        with shared.reading(str(path)) as src:
            assert src in used
    shared.close()
    assert all(src.closed for src in used)


def test_the_lazy_load_is_reused_only_for_items_that_describe_their_assets_alike(
    cfg: Config, demo_archive: DemoArchive
) -> None:
    first, second = window_items(demo_archive)[:2]
    tiles = Pipeline(cfg).tiles
    assets = ["red", "nir08", "scl"]
    key = loading._skeleton_key(first, assets, tiles[0])
    assert loading._skeleton_key(second, assets, tiles[0]) == key  # another date, same metadata: the same layout
    assert loading._skeleton_key(first, assets, tiles[1]) != key  # another grid
    assert loading._skeleton_key(first, assets[:2], tiles[0]) != key  # other variables
    other = first.clone()
    other.assets["red"].extra_fields["raster:bands"] = [{"data_type": "float32", "nodata": -1}]
    assert loading._skeleton_key(other, assets, tiles[0]) != key  # another data type or nodata
    del other.assets["red"]
    assert loading._skeleton_key(other, assets, tiles[0]) != key  # an item without one of the assets


@pytest.mark.parametrize(("soft", "expected"), [(1 << 20, 1024), (2000, 500), (100, 48), (-1, 1024)])
def test_a_run_keeps_assets_open_within_a_quarter_of_the_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, expected: int
) -> None:
    """A year of dates for every tile stays open through the run, never more than a quarter of the open-file limit."""
    soft = resource.RLIM_INFINITY if soft == -1 else soft
    monkeypatch.setattr(aligned.resource, "getrlimit", lambda _: (soft, resource.RLIM_INFINITY))
    assert aligned.run_capacity() == expected
    with aligned.shared_datasets():
        assert aligned._shared is not None and aligned._shared.capacity == expected
