"""Source presets against the real items of their providers, and `nrt-alerts check-source` reading one of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from test_faults import write_catalog

from scheduler.config import SourceConfig, load_config
from scheduler.errors import ConfigError
from scheduler.loading import item_linear
from scheduler.presets import PRESETS
from scheduler.sources import processing_baseline
from server.cli import main

REAL = Path(__file__).parent / "data" / "real-stac"
PC_ITEM = REAL / "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json"
USGS_ITEM = REAL / "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json"
CDSE_ITEM = REAL / "S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json"
EARTH_SEARCH_ITEM = REAL / "S2B_T38XNF_20250422T091553_L2A_built.json"
EARTH_SEARCH_V0_ITEM = REAL / "S2A_28QCH_20200714_0_L2A.json"
SIZE = 64  # px of the local rasters standing in for the providers' files


def real(path: Path) -> pystac.Item:
    return pystac.Item.from_dict(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("preset", "path"),
    [
        ("planetary-computer/sentinel-2-l2a", PC_ITEM),
        ("usgs/landsat-c2l2-sr", USGS_ITEM),
        ("cdse/sentinel-2-l2a", CDSE_ITEM),
        ("earth-search/sentinel-2-c1-l2a", EARTH_SEARCH_ITEM),
    ],
)
def test_the_presets_asset_keys_and_collection_are_those_of_the_providers_item(preset: str, path: Path) -> None:
    item = real(path)
    cfg = SourceConfig(preset=preset)
    assert cfg.collection == item.collection_id
    for key in [*cfg.bands.values(), cfg.mask_band]:
        assert key in item.assets, f"{preset}: {key} not in {sorted(item.assets)}"


def test_a_planetary_computer_item_before_baseline_04_00_is_read_without_offset() -> None:
    item = real(PC_ITEM)
    cfg = SourceConfig(preset="planetary-computer/sentinel-2-l2a")
    assert item.properties["s2:processing_baseline"] == "02.12"
    assert all("offset" not in band for band in item.assets["B8A"].extra_fields["raster:bands"])
    assert item_linear(item, "B8A", cfg) == (0.0001, 0.0)  # not the preset's fallback, -0.1
    item.properties["s2:processing_baseline"] = "05.10"
    assert item_linear(item, "B8A", cfg) == (0.0001, -0.1)


@pytest.mark.parametrize(
    ("preset", "path", "key", "linear"),
    [
        ("cdse/sentinel-2-l2a", CDSE_ITEM, "B8A_20m", (0.0001, -0.1)),  # STAC 1.1 raster:scale/offset on the asset
        ("earth-search/sentinel-2-c1-l2a", EARTH_SEARCH_ITEM, "nir08", (0.0001, -0.1)),  # raster:bands
        ("earth-search/sentinel-2-l2a", EARTH_SEARCH_V0_ITEM, "B8A", (0.0001, 0.0)),  # N0214 in sentinel:product_id
        ("usgs/landsat-c2l2-sr", USGS_ITEM, "nir08", (0.0000275, -0.2)),  # no metadata: the preset's
    ],
)
def test_each_providers_item_states_its_scale_and_offset_its_own_way(
    preset: str, path: Path, key: str, linear: tuple[float, float]
) -> None:
    assert item_linear(real(path), key, SourceConfig(preset=preset)) == linear


def test_the_baseline_is_read_from_the_product_name_where_no_field_states_it() -> None:
    item = real(EARTH_SEARCH_V0_ITEM)
    assert processing_baseline(item) == "02.14"
    item.properties["sentinel:product_id"] = "S2A_MSIL2A_20220714T115221_N0400_R123_T28QCH_20220714T191310"
    assert processing_baseline(item) == "04.00"
    assert processing_baseline(real(CDSE_ITEM)) == "05.11"  # its id is the product name
    assert processing_baseline(real(USGS_ITEM)) is None


def test_landsat_preset_rejects_qa_pixel_bits_not_classes() -> None:
    cfg = SourceConfig(preset="usgs/landsat-c2l2-sr")
    assert cfg.mask_band == "qa_pixel" and cfg.mask_invalid == 0b111111  # bits 0-5: fill .. snow
    assert (cfg.scale, cfg.offset) == (0.0000275, -0.2)


def test_a_preset_key_is_overridden_by_the_config_and_an_unknown_preset_is_one_line(tmp_path: Path) -> None:
    assert SourceConfig(preset="cdse/sentinel-2-l2a", collection="sentinel-2-l2a-other").collection == (
        "sentinel-2-l2a-other"
    )
    config = tmp_path / "nrt-alerts.toml"
    config.write_text(
        '[area]\ncrs = "EPSG:32633"\nresolution = 20\nbounds = [0, 0, 1280, 1280]\n'
        '[source]\npreset = "earth-search/sentinel-2"\n[history]\nstart = 2021-01-01\nend = 2021-12-31\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value) == (
        f"invalid config {config}: source: unknown preset 'earth-search/sentinel-2' (known: {', '.join(PRESETS)})"
    )


# -- check-source on a real item whose assets are local rasters on the item's own grid --------------------------


def _write(path: Path, array: np.ndarray, crs: str, transform: Affine) -> None:
    profile = {"driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1}
    with rasterio.open(path, "w", **profile, dtype=array.dtype, crs=crs, transform=transform, nodata=0) as dst:
        dst.write(array, 1)


def local_copy(path: Path, folder: Path, rasters: dict[str, tuple[np.ndarray, float]]) -> tuple[pystac.Item, Affine]:
    """The real item with `rasters` (asset key -> array, pixel size) as files at its grid's origin; the 20/30 m grid."""
    item = real(path)
    crs = f"EPSG:{json.loads(path.read_text())['properties']['proj:epsg']}"  # pystac migrates it to proj:code
    origin = item.properties.get("proj:transform") or item.assets[next(iter(rasters))].extra_fields["proj:transform"]
    x0, y0 = origin[2], origin[5]
    folder.mkdir(parents=True)
    grid = None
    for key, (array, size) in rasters.items():
        transform = Affine(size, 0, x0, 0, -size, y0)
        _write(folder / f"{key}.tif", array, crs, transform)
        asset = item.assets[key]
        asset.href = str(folder / f"{key}.tif")
        if "proj:shape" in asset.extra_fields:  # per-asset grids (Sentinel-2's 10 and 20 m)
            asset.extra_fields["proj:shape"] = list(array.shape)
            asset.extra_fields["proj:transform"] = list(transform)[:6]
        grid = grid if grid is not None and grid.a >= size else transform
    if "proj:shape" in item.properties:  # one grid for the item (Landsat)
        item.properties["proj:shape"] = [SIZE, SIZE]
    west, south, east, north = transform_bounds(crs, "EPSG:4326", x0, y0 - SIZE * grid.a, x0 + SIZE * grid.a, y0)
    item.geometry = {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }
    item.bbox = [west, south, east, north]
    return item, grid


def deployment(folder: Path, item: pystac.Item, grid: Affine, preset: str, history: tuple[str, str]) -> Path:
    """A config using `preset`, over the item's first SIZE x SIZE pixels, reading a static catalog of it."""
    catalog = write_catalog(folder / "catalog", [item], item.collection_id)
    x0, y0, size = grid.c, grid.f, grid.a
    config = folder / "nrt-alerts.toml"
    config.write_text(
        f'[area]\ncrs = "{item.ext.proj.crs_string}"\nresolution = {size:g}\n'
        f"bounds = [{x0}, {y0 - SIZE * size}, {x0 + SIZE * size}, {y0}]\ntile_size = {SIZE}\n"
        f'[source]\npreset = "{preset}"\nkind = "static"\ncatalog = "{catalog}"\nmax_cloud_cover = 100\n'
        f"[history]\nstart = {history[0]}\nend = {history[1]}\n"
        f'[output]\ndir = "{folder / "output"}"\n'
    )
    return config


def quarter_masked(clear: int, cloudy: int, dtype: type) -> np.ndarray:
    """A SIZE x SIZE mask whose top quarter is cloudy."""
    mask = np.full((SIZE, SIZE), clear, dtype=dtype)
    mask[: SIZE // 4] = cloudy
    return mask


def test_check_source_reads_a_planetary_computer_item_with_its_preset(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    cli_logging: None,  # noqa: F811
) -> None:
    rasters = {
        "B04": (np.full((2 * SIZE, 2 * SIZE), 1000, np.uint16), 10.0),  # 10 m, read nearest onto the 20 m grid
        "B8A": (np.full((SIZE, SIZE), 3000, np.uint16), 20.0),
        "SCL": (quarter_masked(4, 9, np.uint8), 20.0),  # vegetation; cloud high probability
    }
    item, grid = local_copy(PC_ITEM, tmp_path / "assets", rasters)
    config = deployment(tmp_path, item, grid, "planetary-computer/sentinel-2-l2a", ("2019-06-01", "2019-07-31"))
    assert main(["--log-level", "warning", "check-source", "-c", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "search: 1 item(s), 1 acquisition(s) in collection 'sentinel-2-l2a' from 2019-06-29T21:25:29 to "
        "2019-06-29T21:25:29",
        f"assets of item {item.id}:",
        "  red = B04 (uint16, 10 m)",
        "  nir = B8A (uint16, 20 m)",
        "  mask = SCL (uint8, 20 m)",
        "grid: tile r000c000, EPSG:32606, 20 m, 64 x 64 px",
        f"read: acquisition 2019-06-29T21:25:29 ({item.id}): ndvi valid on 75.0% of the tile's pixels",
    ]


def test_check_source_reads_a_landsat_item_with_its_preset_and_qa_bits(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    cli_logging: None,  # noqa: F811
) -> None:
    rasters = {
        "red": (np.full((SIZE, SIZE), 8000, np.uint16), 30.0),
        "nir08": (np.full((SIZE, SIZE), 20000, np.uint16), 30.0),
        "qa_pixel": (quarter_masked(21824, 22280, np.uint16), 30.0),  # clear; cloud (bit 3)
    }
    item, grid = local_copy(USGS_ITEM, tmp_path / "assets", rasters)
    config = deployment(tmp_path, item, grid, "usgs/landsat-c2l2-sr", ("2020-01-01", "2020-01-31"))
    assert main(["--log-level", "warning", "check-source", "-c", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "grid: tile r000c000, EPSG:32615, 30 m, 64 x 64 px",
        f"read: acquisition 2020-01-14T17:05:46 ({item.id}): ndvi valid on 75.0% of the tile's pixels",
    ]
    assert out[2:5] == ["  red = red (?, 30 m)", "  nir = nir08 (?, 30 m)", "  mask = qa_pixel (?, 30 m)"]


def test_check_source_names_a_missing_asset_key_and_exits_3(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    cli_logging: None,  # noqa: F811
) -> None:
    rasters = {"B04": (np.full((SIZE, SIZE), 1000, np.uint16), 20.0)}
    item, grid = local_copy(PC_ITEM, tmp_path / "assets", rasters)
    config = deployment(tmp_path, item, grid, "earth-search/sentinel-2-c1-l2a", ("2019-06-01", "2019-07-31"))
    text = config.read_text().replace(
        "max_cloud_cover = 100\n", 'max_cloud_cover = 100\ncollection = "sentinel-2-l2a"\n'
    )
    config.write_text(text)
    assert main(["check-source", "-c", str(config)]) == 3
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nrt-alerts: error:")]
    assert line.startswith(
        f"nrt-alerts: error: item {item.id} has no asset 'red' (source bands.red); its assets: AOT, B01"
    )


def test_check_source_says_why_an_acquisition_cannot_be_read_and_exits_3(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    cli_logging: None,  # noqa: F811
) -> None:
    rasters = {
        "B04": (np.full((SIZE, SIZE), 1000, np.uint16), 20.0),
        "B8A": (np.full((SIZE, SIZE), 3000, np.uint16), 20.0),
        "SCL": (quarter_masked(4, 9, np.uint8), 20.0),
    }
    item, grid = local_copy(PC_ITEM, tmp_path / "assets", rasters)
    config = deployment(tmp_path, item, grid, "planetary-computer/sentinel-2-l2a", ("2019-06-01", "2019-07-31"))
    config.write_text(config.read_text().replace("max_cloud_cover = 100\n", "max_cloud_cover = 100\nretries = 0\n"))
    (tmp_path / "assets" / "SCL.tif").unlink()  # the provider lost the mask
    assert main(["--log-level", "error", "check-source", "-c", str(config)]) == 3
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nrt-alerts: error:")]
    assert line.startswith(
        f"nrt-alerts: error: tile r000c000: loading acquisition 2019-06-29T21:25:29 (item {item.id}) failed: "
    )
    assert "SCL.tif" in line, line
