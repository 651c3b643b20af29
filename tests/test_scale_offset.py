"""Scale and offset per item from its metadata: a history crossing Sentinel-2's baseline 04.00 shows no step."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from scheduler.config import Config
from scheduler.grid import area_tiles
from scheduler.loading import item_linear, load_index

CRS, SIZE, PIXEL = "EPSG:32633", 32, 20.0
ORIGIN = (500000.0, 5400000.0)
REFLECTANCE = {"red": 0.05, "nir08": 0.30}  # the ground does not change: every date's NDVI is the same


def config() -> Config:
    x0, y0 = ORIGIN
    return Config(
        area={
            "crs": CRS,
            "resolution": PIXEL,
            "bounds": [x0, y0 - SIZE * PIXEL, x0 + SIZE * PIXEL, y0],
            "tile_size": SIZE,
        },
        source={"kind": "static", "catalog": "catalog.json", "collection": "c", "mask_band": None, "offset": -0.1},
        history={"start": dt.date(2021, 1, 1), "end": dt.date(2022, 12, 31)},
    )


def item(folder: Path, day: dt.date, offset_dn: int, metadata: str) -> pystac.Item:
    """An acquisition whose DNs carry `offset_dn` (1000 from baseline 04.00 on), described the way `metadata` says."""
    transform = Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])
    west, south, east, north = transform_bounds(
        CRS, "EPSG:4326", ORIGIN[0], ORIGIN[1] - SIZE * PIXEL, ORIGIN[0] + SIZE * PIXEL, ORIGIN[1]
    )
    when = dt.datetime.combine(day, dt.time(10, 0), tzinfo=dt.UTC)
    footprint = {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }
    result = pystac.Item(f"S2_{day:%Y%m%d}", footprint, [west, south, east, north], when, {"eo:cloud_cover": 0})
    for key, value in REFLECTANCE.items():
        path = folder / f"{day:%Y%m%d}_{key}.tif"
        data = np.full((SIZE, SIZE), round(value * 10000) + offset_dn, np.uint16)
        profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "uint16", "nodata": 0}
        with rasterio.open(path, "w", **profile, crs=CRS, transform=transform) as dst:
            dst.write(data, 1)
        fields: dict[str, object] = {}
        if metadata == "raster:bands":
            band = {"nodata": 0, "data_type": "uint16", "scale": 0.0001}
            fields["raster:bands"] = [band | ({"offset": -offset_dn / 10000} if offset_dn else {})]
        elif metadata == "asset fields":  # STAC 1.1, as CDSE writes it
            fields.update({"raster:scale": 0.0001, "raster:offset": -offset_dn / 10000})
        elif metadata == "baseline":  # Planetary Computer: only the item's processing baseline tells
            result.properties["s2:processing_baseline"] = "05.10" if offset_dn else "03.01"
        result.add_asset(
            key, pystac.Asset(str(path), media_type=pystac.MediaType.GEOTIFF, roles=["data"], extra_fields=fields)
        )
    return result


@pytest.fixture
def history(tmp_path: Path) -> list[pystac.Item]:
    """Dates before baseline 04.00 (no offset) and after it, told by raster:bands, asset fields, the baseline, none."""
    return [
        item(tmp_path, dt.date(2021, 12, 20), 0, "raster:bands"),
        item(tmp_path, dt.date(2022, 2, 1), 1000, "raster:bands"),
        item(tmp_path, dt.date(2022, 3, 1), 1000, "asset fields"),
        item(tmp_path, dt.date(2022, 4, 1), 1000, "none"),  # the config's offset (-0.1) stands in
        item(tmp_path, dt.date(2022, 5, 1), 0, "baseline"),  # 03.01: no offset, whatever the config says
        item(tmp_path, dt.date(2022, 6, 1), 1000, "baseline"),  # 05.10
    ]


def test_a_history_crossing_the_baseline_change_shows_no_step(history: list[pystac.Item]) -> None:
    cfg = config()
    [tile] = area_tiles(cfg.area)
    index = load_index(history, tile, cfg).values
    assert index.shape == (6, SIZE, SIZE)
    expected = np.float32(0.25) / np.float32(0.35)
    for date in index:
        np.testing.assert_allclose(date, expected, rtol=1e-6)
    assert np.abs(index - index[0]).max() < 1e-6  # float32 rounding only; a constant -0.1 reads the first as 1.667


def test_each_items_scale_and_offset_come_from_its_metadata_the_configs_as_fallback(
    history: list[pystac.Item],
) -> None:
    cfg = config()
    assert item_linear(history[0], "nir08", cfg.source) == (0.0001, 0.0)
    assert item_linear(history[1], "nir08", cfg.source) == (0.0001, -0.1)
    assert item_linear(history[2], "nir08", cfg.source) == (0.0001, -0.1)
    assert item_linear(history[3], "nir08", cfg.source) == (0.0001, -0.1)  # the config's
    assert item_linear(history[4], "nir08", cfg.source) == (0.0001, 0.0)
    assert item_linear(history[5], "nir08", cfg.source) == (0.0001, -0.1)
    other = cfg.source.model_copy(update={"scale": 0.5, "offset": 7.0})
    assert item_linear(history[0], "nir08", other) == (0.0001, 0.0)  # metadata wins over the config
    assert item_linear(history[3], "nir08", other) == (0.5, 7.0)
