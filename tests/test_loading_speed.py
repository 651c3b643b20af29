"""Fast loading keeps results: the fused post-processing is xarray's bit for bit; the static search sees changes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import xarray as xr
from shapely.geometry import box, mapping

from scheduler.config import INDEX_BANDS, SCREENING_BANDS, Config
from scheduler.loading import _index_chunk, compute_index, masked_index, warm_up
from scheduler.sources import StaticCatalogSource

ASSETS = {"red": "red", "nir": "nir08", "green": "green", "swir16": "swir16", "swir22": "swir22", "blue": "blue"}


def _config(index: str, threads: int = 2, **source: object) -> Config:
    src = {"kind": "static", "catalog": "/nowhere/catalog.json", "collection": "c", "bands": ASSETS, **source}
    return Config(
        area={"crs": "EPSG:32633", "resolution": 20.0, "bounds": [0, 0, 100, 100]},
        source=src,
        history={"start": "2021-01-01", "end": "2022-01-01"},
        index={"name": index},
        compute={"threads": threads},
    )


def _dataset(dtype: str = "uint16", mask_dtype: str = "uint8", shape: tuple[int, int, int] = (7, 90, 80)) -> xr.Dataset:
    """A load as odc-stac returns it: reflectances with nodata 0, equal bands (0 / 0), a scene classification."""
    rng = np.random.default_rng(42)
    values = {}
    for asset in ASSETS.values():
        raw = rng.integers(0, 12000, shape)
        raw[rng.random(shape) < 0.1] = 0  # nodata
        values[asset] = raw
    same = rng.random(shape) < 0.05  # nir == red: a zero numerator; both 1000 with offset 0.1: a zero denominator
    values["nir08"][same] = values["red"][same] = 1000
    values["swir22"][same] = values["nir08"][same]
    values["scl"] = rng.integers(0, 12, shape)
    coords = {
        "time": pd.date_range("2021-01-01", periods=shape[0], freq="5D"),
        "y": 5400000.0 - 20 * np.arange(shape[1]),
        "x": 500000.0 + 20 * np.arange(shape[2]),
        "spatial_ref": 32633,
    }
    data_vars = {
        name: (("time", "y", "x"), raw.astype(mask_dtype if name == "scl" else dtype), {"nodata": 0})
        for name, raw in values.items()
    }
    if np.dtype(dtype).kind == "f":
        data_vars["red"][1][0, 0, :5] = [np.nan, np.inf, -np.inf, 0, 1]
    return xr.Dataset(data_vars, coords=coords)


def _xarray_reference(ds: xr.Dataset, cfg: Config, extra_roles: tuple[str, ...]) -> tuple[xr.DataArray, dict]:
    """The post-processing as it was written with xarray before the fused kernels (the specification)."""
    src = cfg.source
    roles = tuple(dict.fromkeys(INDEX_BANDS[cfg.index.name] + extra_roles))
    clear = ds[src.mask_band].isin(src.mask_valid) if src.mask_band else None
    bands = {}
    for role in roles:
        raw = ds[src.bands[role]]
        value = raw.astype(np.float32)
        if src.nodata is not None:
            value = value.where(raw != src.nodata)
        value = value * np.float32(src.scale) + np.float32(src.offset)
        bands[role] = value.where(np.isfinite(value))
    index = compute_index(cfg.index.name, bands)
    if clear is not None:
        index = index.where(clear)
        bands = {role: value.where(clear) for role, value in bands.items()}
    keep = ("time", "y", "x")
    index = index.drop_vars([c for c in index.coords if c not in keep])
    index.name = cfg.index.name
    extra = {role: bands[role].drop_vars([c for c in bands[role].coords if c not in keep]) for role in extra_roles}
    return index, extra


def _assert_same_bits(got: xr.DataArray, want: xr.DataArray) -> None:
    xr.testing.assert_identical(got, want)
    assert got.dtype == want.dtype == np.float32
    assert np.array_equal(got.values.view(np.uint32), want.values.view(np.uint32))  # NaNs too, payload included


@pytest.mark.parametrize("index", ["ndvi", "nbr", "ndmi", "evi"])
@pytest.mark.parametrize("threads", [1, 3])
def test_fused_index_is_xarrays_bit_for_bit(index: str, threads: int) -> None:
    cfg = _config(index, threads)
    ds = _dataset()
    got, got_extra = masked_index(ds, cfg, SCREENING_BANDS)
    want, want_extra = _xarray_reference(ds, cfg, SCREENING_BANDS)
    _assert_same_bits(got, want)
    assert got_extra.keys() == want_extra.keys() == set(SCREENING_BANDS)
    for role in SCREENING_BANDS:
        _assert_same_bits(got_extra[role], want_extra[role])
    # The edges are there: clouds, nodata and 0 / 0 are NaN; the rest is a finite index.
    values = got.values
    assert 0.3 < np.isnan(values).mean() < 0.9
    assert np.isfinite(values[~np.isnan(values)]).all()


@pytest.mark.parametrize("index", ["ndvi", "nbr", "ndmi", "evi"])
def test_warm_up_readies_the_kernel_for_uint16_bands_and_a_uint8_mask(index: str) -> None:
    warm_up(_config(index, 1))
    # The signature a Sentinel-2 L2A load calls (odc-stac gives uint16 reflectances and a uint8 SCL).
    assert any(str(sig[4].dtype) == "uint16" and str(sig[7].dtype) == "uint8" for sig in _index_chunk.signatures)


def test_a_run_readies_the_kernel_beside_its_start_in_a_fresh_process() -> None:
    """warming_up (every run in this process) leaves the kernel loaded when the block ends, failure or not."""
    script = """
import sys
from test_loading_speed import _config
from scheduler.loading import _index_chunk, warming_up
assert not _index_chunk.signatures
with warming_up(_config("ndvi", 1)):
    pass
print(any(str(s[4].dtype) == "uint16" and str(s[7].dtype) == "uint8" for s in _index_chunk.signatures))
bad = _config("ndvi", 1).model_copy(update={"index": None})  # a warm-up that fails is only logged
with warming_up(bad):
    pass
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "ok"]


@pytest.mark.parametrize(
    ("dtype", "mask_dtype", "source"),
    [
        ("int16", "int16", {"nodata": -9999.0, "mask_valid": [4, 5, -1]}),
        ("float32", "uint16", {"nodata": 0.0, "mask_valid": [4, 300]}),
        ("float32", "float32", {"nodata": None, "scale": 1e-4, "offset": 0.0}),
        ("uint16", "uint8", {"mask_band": None, "mask_valid": [300]}),
        ("uint16", "uint8", {"nodata": 0.5, "mask_valid": [4, 256]}),
    ],
)
def test_fused_matches_on_other_types_and_settings(dtype: str, mask_dtype: str, source: dict) -> None:
    cfg = _config("evi", **source)
    ds = _dataset(dtype, mask_dtype, shape=(3, 40, 30))
    got, got_extra = masked_index(ds, cfg, ("green",))
    want, want_extra = _xarray_reference(ds, cfg, ("green",))
    _assert_same_bits(got, want)
    _assert_same_bits(got_extra["green"], want_extra["green"])
    assert np.isfinite(got.values).any() and np.isnan(got.values).any()


def _write_catalog(root: Path, days: list[int]) -> Path:
    """A static catalog of one item per day of January 2023 (geometry 14..16 E, 45..47 N), written atomically."""
    catalog = pystac.Catalog("cat", "test")
    for day in days:
        item = pystac.Item(
            f"item-{day}",
            geometry=mapping(box(14, 45, 16, 47)),
            bbox=[14, 45, 16, 47],
            datetime=dt.datetime(2023, 1, day, 10, tzinfo=dt.UTC),
            properties={"eo:cloud_cover": 10},
            collection="c",
        )
        catalog.add_item(item)
    staging = root / f"staging-{len(days)}"
    catalog.normalize_hrefs(str(staging))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    for item_dir in staging.iterdir():
        if item_dir.is_dir():
            shutil.copytree(item_dir, root / item_dir.name, dirs_exist_ok=True)
    os.replace(staging / "catalog.json", root / "catalog.json")
    return root / "catalog.json"


def test_static_search_parses_the_catalog_once_until_it_is_replaced(tmp_path: Path, monkeypatch) -> None:
    path = _write_catalog(tmp_path, [1, 2])
    source = StaticCatalogSource(_config("ndvi", catalog=str(path)).source)
    parses: list[str] = []
    from_file = pystac.Item.from_file
    monkeypatch.setattr(pystac.Item, "from_file", lambda href: parses.append(Path(href).stem) or from_file(href))
    span = (dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2023, 2, 1, tzinfo=dt.UTC))
    for bbox in [(14.5, 45.5, 15, 46), (15, 46, 15.5, 46.5)] * 3:  # several tiles, several runs
        assert [item.id for item in source.search(bbox, *span)] == ["item-1", "item-2"]
    assert parses == ["item-1", "item-2"]
    # A new acquisition: its item file, and a link to it in catalog.json, replaced atomically within one clock tick
    # (the old modification time): still a change. Of the items, only the new one is parsed.
    stamp = path.stat()
    doc = json.loads((tmp_path / "item-2" / "item-2.json").read_text())
    doc.update(id="item-3", properties={**doc["properties"], "datetime": "2023-01-03T10:00:00Z"})
    (tmp_path / "item-3").mkdir()
    (tmp_path / "item-3" / "item-3.json").write_text(json.dumps(doc))
    catalog = json.loads(path.read_text())
    catalog["links"].append({"rel": "item", "href": "./item-3/item-3.json", "type": "application/json"})
    (tmp_path / "next.json").write_text(json.dumps(catalog))
    os.replace(tmp_path / "next.json", path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert [item.id for item in source.search((14.5, 45.5, 15, 46), *span)] == ["item-1", "item-2", "item-3"]
    assert parses == ["item-1", "item-2", "item-3"]
    # An item file rewritten in place is parsed again once the catalog changes, with what it now says.
    item_path = tmp_path / "item-2" / "item-2.json"
    doc = json.loads(item_path.read_text())
    doc["properties"]["eo:cloud_cover"] = 99.5  # over the config's limit now
    item_path.write_text(json.dumps(doc))
    path.write_text(path.read_text() + "\n")
    assert [item.id for item in source.search((14.5, 45.5, 15, 46), *span)] == ["item-1", "item-3"]
    assert parses == ["item-1", "item-2", "item-3", "item-2"]
