"""Tests of the synthetic Sentinel-2 L2A demo archive (scheduler.demo)."""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from affine import Affine
from pydantic import ValidationError
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from rasterio.features import rasterize
from rio_cogeo.cogeo import cog_validate

from scheduler.demo import KIND_CODES, SCENARIOS, DemoArchive, DemoSpec, generate_demo, load_demo

SPEC = DemoSpec(
    width=64,
    height=64,
    start=datetime.date(2021, 1, 1),
    end=datetime.date(2022, 12, 31),
    n_clearcuts=3,
    disturbance_start=datetime.date(2022, 3, 1),
)
REFLECTANCE = ("green", "red", "nir08", "swir16", "swir22")
ASSETS = (*REFLECTANCE, "scl")
VALID_SCL = (4, 5, 6, 7)
EPOCH = datetime.date(1970, 1, 1)
EO_URI = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
# Vendored extension schemas: shared/ sits beside the repository clone (locally and in CI).
SCHEMA_DIRS = (
    Path(__file__).resolve().parents[2] / "shared" / "stac-schemas",
    Path(__file__).resolve().parents[1] / "catalog" / "schemas",
)


# ---------------------------------------------------------------------------------------------- helpers


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def item_folder(archive: DemoArchive, when: datetime.datetime) -> tuple[str, Path]:
    item_id = f"S2X_DEMO_{when:%Y%m%d}"
    return item_id, archive.root / "items" / item_id


def read_stack(archive: DemoArchive, asset: str) -> np.ndarray:
    """(time, rows, cols) array of one asset over all acquisitions."""
    arrays = []
    for when in archive.dates:
        item_id, folder = item_folder(archive, when)
        arrays.append(read(folder / f"{item_id}_{asset}.tif"))
    return np.stack(arrays)


def reflectance(dn: np.ndarray) -> np.ndarray:
    return np.where(dn == 0, np.nan, dn * 0.0001 - 0.1)


def offline_validator() -> tuple[JsonSchemaSTACValidator, set[str]]:
    """pystac validator whose cache holds the vendored extension schemas; also returns their URIs."""
    validator = JsonSchemaSTACValidator()
    available: set[str] = set()
    for folder in SCHEMA_DIRS:
        for path in sorted(folder.rglob("schema.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            uri = schema["$id"].rstrip("#")
            validator.schema_cache.setdefault(uri, schema)
            available.add(uri)
    return validator, available


def validate_offline(obj: dict, validator: JsonSchemaSTACValidator, available: set[str]) -> list[str]:
    """Validate core + every extension whose schema is available offline; return the skipped extension URIs."""
    object_type = pystac.STACObjectType(obj["type"]) if obj["type"] != "Feature" else pystac.STACObjectType.ITEM
    validator.validate_core(obj, object_type, obj["stac_version"])
    skipped = []
    for uri in obj.get("stac_extensions", []):
        if uri in available:
            validator.validate_extension(obj, object_type, obj["stac_version"], uri)
        else:
            skipped.append(uri)
    return skipped


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return generate_demo(tmp_path_factory.mktemp("demo"), SPEC)


@pytest.fixture(scope="module")
def stacks(archive: DemoArchive) -> dict[str, np.ndarray]:
    return {asset: read_stack(archive, asset) for asset in ASSETS}


@pytest.fixture(scope="module")
def ndvi(stacks: dict[str, np.ndarray]) -> np.ndarray:
    red, nir = reflectance(stacks["red"]), reflectance(stacks["nir08"])
    out = (nir - red) / (nir + red)
    out[~np.isin(stacks["scl"], VALID_SCL)] = np.nan
    return out


@pytest.fixture(scope="module")
def truth(archive: DemoArchive) -> np.ndarray:
    return read(archive.ground_truth_raster_path)


@pytest.fixture(scope="module")
def forest(archive: DemoArchive) -> np.ndarray:
    return read(archive.forest_mask_path).astype(bool)


# ---------------------------------------------------------------------------------------------- layout


def test_schedule_regular_revisit_over_whole_span(archive: DemoArchive) -> None:
    dates = archive.dates
    assert dates == sorted(dates)
    assert all(d.tzinfo is not None and d.utcoffset() == datetime.timedelta(0) for d in dates)
    assert all((d.hour, d.minute) == (10, 12) for d in dates)
    assert dates[0].date() == SPEC.start
    assert (SPEC.end - dates[-1].date()).days < SPEC.revisit_days
    gaps = np.diff([d.date().toordinal() for d in dates])
    assert (gaps % SPEC.revisit_days == 0).all()
    assert (gaps == SPEC.revisit_days).mean() > 0.9
    assert len(dates) > 0.9 * (SPEC.end - SPEC.start).days / SPEC.revisit_days


def test_every_asset_is_a_valid_cog_on_the_grid(archive: DemoArchive) -> None:
    for when in archive.dates:
        item_id, folder = item_folder(archive, when)
        assert (folder / f"{item_id}.json").exists()
        for asset in ASSETS:
            path = folder / f"{item_id}_{asset}.tif"
            is_valid, errors, _ = cog_validate(str(path), quiet=True)
            assert is_valid, (path, errors)
    for path in (archive.forest_mask_path, archive.ground_truth_raster_path, archive.ground_truth_kind_path):
        assert cog_validate(str(path), quiet=True)[0]
    item_id, folder = item_folder(archive, archive.dates[0])
    with rasterio.open(folder / f"{item_id}_red.tif") as src:
        assert (src.width, src.height, src.res) == (64, 64, (20.0, 20.0))
        assert src.crs.to_epsg() == 32633
        assert (src.bounds.left, src.bounds.top) == (500000.0, 5400000.0)
        assert src.dtypes[0] == "uint16" and src.nodata == 0
    with rasterio.open(folder / f"{item_id}_scl.tif") as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0


def test_land_cover_mostly_forest(forest: np.ndarray, stacks: dict[str, np.ndarray]) -> None:
    assert 0.65 < forest.mean() < 0.75
    water = (stacks["scl"] == 6).mean(axis=0) > 0.5
    assert 0.02 < water.mean() < 0.08
    assert not (water & forest).any()


def test_orbit_edge_nodata_in_some_acquisitions(stacks: dict[str, np.ndarray]) -> None:
    nodata = stacks["scl"] == 0
    with_strip = nodata[:, :, 0].all(axis=1)
    assert 0.05 < with_strip.mean() < 0.5
    # Only a left-edge strip, and every band agrees with the SCL about it.
    assert not nodata[:, :, 32:].any()
    for asset in REFLECTANCE:
        assert ((stacks[asset] == 0) == nodata).all()


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_identical_different_seed_different(
    archive: DemoArchive, stacks: dict[str, np.ndarray], tmp_path: Path
) -> None:
    again = generate_demo(tmp_path / "same", SPEC)
    assert again.dates == archive.dates
    for asset in ASSETS:
        assert np.array_equal(read_stack(again, asset), stacks[asset]), asset
    assert np.array_equal(read(again.ground_truth_raster_path), read(archive.ground_truth_raster_path))
    assert again.ground_truth_path.read_text() == archive.ground_truth_path.read_text()

    other = generate_demo(tmp_path / "other", SPEC.model_copy(update={"seed": SPEC.seed + 1}))
    assert not np.array_equal(read(other.forest_mask_path), read(archive.forest_mask_path))
    item_id, folder = item_folder(other, other.dates[0])
    first_red = read(folder / f"{item_id}_red.tif")
    assert not np.array_equal(first_red, stacks["red"][0])


def test_second_call_reuses_archive(archive: DemoArchive) -> None:
    files = sorted(p for p in archive.root.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    started = time.perf_counter()
    again = generate_demo(archive.root, SPEC)
    assert time.perf_counter() - started < 1.0
    assert again == archive
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert load_demo(archive.root) == archive


def test_changed_spec_or_missing_marker_regenerates(tmp_path: Path) -> None:
    spec = SPEC.model_copy(
        update={"end": datetime.date(2021, 9, 30), "n_clearcuts": 1, "disturbance_start": datetime.date(2021, 5, 1)}
    )
    first = generate_demo(tmp_path, spec)
    changed = spec.model_copy(update={"start": datetime.date(2021, 3, 2)})
    second = generate_demo(tmp_path, changed)
    assert second.spec == changed and load_demo(tmp_path).spec == changed
    assert second.dates[0].date() == changed.start
    # Item folders of the old schedule are gone.
    folders = {p.name for p in (tmp_path / "items").iterdir()}
    assert folders == {f"S2X_DEMO_{d:%Y%m%d}" for d in second.dates}
    assert first.dates[0] not in second.dates

    marker = tmp_path / "demo-spec.json"
    marker.unlink()
    with pytest.raises(FileNotFoundError):
        load_demo(tmp_path)
    catalog_mtime = second.catalog_path.stat().st_mtime_ns
    third = generate_demo(tmp_path, changed)
    assert marker.exists() and third == second
    assert second.catalog_path.stat().st_mtime_ns > catalog_mtime


def test_load_demo_without_archive_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_demo(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------------------------- physics


def months_of(archive: DemoArchive) -> np.ndarray:
    return np.array([d.month for d in archive.dates])


def test_forest_ndvi_seasonal_ranges(
    archive: DemoArchive, ndvi: np.ndarray, forest: np.ndarray, truth: np.ndarray
) -> None:
    stable = forest & (truth == 0)
    months = months_of(archive)
    summer = ndvi[np.isin(months, (6, 7, 8))][:, stable]
    winter = ndvi[np.isin(months, (12, 1, 2))][:, stable]
    summer, winter = summer[np.isfinite(summer)], winter[np.isfinite(winter)]
    assert summer.size > 1000 and winter.size > 1000
    assert 0.82 < np.median(summer) < 0.88
    assert 0.74 < np.median(winter) < 0.80
    assert np.percentile(summer, 2) > 0.75 and np.percentile(summer, 98) < 0.91
    assert np.percentile(winter, 2) > 0.68 and np.percentile(winter, 98) < 0.86
    # Cloud-mask leaks exist but are rare enough not to look like disturbances.
    all_clear = ndvi[:, stable]
    all_clear = all_clear[np.isfinite(all_clear)]
    assert (all_clear < 0.6).mean() < 0.002


def test_forest_swir_and_green_plausible(stacks: dict[str, np.ndarray], forest: np.ndarray, truth: np.ndarray) -> None:
    clear = np.isin(stacks["scl"], (4,)) & (forest & (truth == 0))[None]
    swir = reflectance(stacks["swir16"])[clear]
    green = reflectance(stacks["green"])[clear]
    assert 0.14 < np.median(swir) < 0.21
    assert 0.035 < np.median(green) < 0.065


def test_cropland_strongly_seasonal(ndvi: np.ndarray, forest: np.ndarray) -> None:
    open_land = ~forest & (np.nanmedian(ndvi, axis=0) > 0)
    low = np.nanpercentile(ndvi[:, open_land], 10, axis=0)
    high = np.nanpercentile(ndvi[:, open_land], 90, axis=0)
    # Crops go from bare soil to full canopy and back; grassland varies less but is never forest-like stable.
    crops = high - low > 0.4
    assert crops.mean() > 0.2
    assert np.median(low[crops]) < 0.35 and np.median(high[crops]) > 0.7
    assert np.median(high - low) > 0.15


def test_clearcuts_drop_ndvi_after_their_date(archive: DemoArchive, ndvi: np.ndarray, truth: np.ndarray) -> None:
    days = np.array([(d.date() - EPOCH).days for d in archive.dates])
    codes = np.unique(truth[truth > 0])
    assert codes.size == SPEC.n_clearcuts
    for code in codes:
        pixels = truth == code
        after = days >= code
        before_values = ndvi[~after][:, pixels]
        after_values = ndvi[after][:, pixels]
        before_values = before_values[np.isfinite(before_values)]
        after_values = after_values[np.isfinite(after_values)]
        assert after_values.size > 0 and before_values.size > 0
        assert np.median(before_values) > 0.75
        assert (before_values > 0.6).mean() > 0.97
        assert np.median(after_values) < 0.35
        assert (after_values < 0.4).mean() > 0.97


def test_clear_cut_surface_looks_like_bare_soil(
    archive: DemoArchive, stacks: dict[str, np.ndarray], truth: np.ndarray
) -> None:
    days = np.array([(d.date() - EPOCH).days for d in archive.dates])
    disturbed_now = (truth[None] > 0) & (days[:, None, None] >= truth[None])
    clear = disturbed_now & (stacks["scl"] == 5)
    assert clear.sum() > 50
    assert np.median(reflectance(stacks["swir16"])[clear]) > 0.22


# ---------------------------------------------------------------------------------------------- clouds


def test_cloud_cover_matches_scl(archive: DemoArchive, stacks: dict[str, np.ndarray]) -> None:
    catalog = pystac.Catalog.from_file(str(archive.catalog_path))
    covers = {item.datetime: item.properties["eo:cloud_cover"] for item in catalog.get_items(recursive=True)}
    scl = stacks["scl"]
    expected = []
    for i, when in enumerate(archive.dates):
        valid = scl[i] != 0
        cloudy = np.isin(scl[i], (3, 8, 9, 10)) & valid
        expected.append(100.0 * cloudy.sum() / valid.sum())
        assert covers[when] == pytest.approx(expected[-1], abs=0.01)
    expected_arr = np.array(expected)
    assert (expected_arr == 100).sum() >= 1
    assert 0.2 < (expected_arr > 0).mean() < 0.5
    assert (scl == 10).any() and (scl == 3).any() and (scl == 8).any() and (scl == 9).any()


def test_clouds_are_bright_and_shadows_dark(stacks: dict[str, np.ndarray]) -> None:
    scl = stacks["scl"]
    thick = np.isin(scl, (8, 9))
    for asset in ("green", "red", "nir08"):
        values = reflectance(stacks[asset])[thick]
        assert np.percentile(values, 5) > 0.28 and np.percentile(values, 95) < 0.62, asset
    shadow_nir = reflectance(stacks["nir08"])[scl == 3]
    clear_nir = reflectance(stacks["nir08"])[scl == 4]
    assert np.median(shadow_nir) < 0.5 * np.median(clear_nir)


# ---------------------------------------------------------------------------------------------- ground truth


def test_ground_truth_raster_equals_rasterised_polygons(
    archive: DemoArchive, truth: np.ndarray, forest: np.ndarray
) -> None:
    collection = json.loads(archive.ground_truth_path.read_text())
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and len(features) == SPEC.n_clearcuts
    with rasterio.open(archive.ground_truth_raster_path) as src:
        transform, shape = src.transform, src.shape
        assert src.dtypes[0] == "uint16" and src.nodata is None
    shapes = []
    window = (SPEC.disturbance_start, SPEC.end - datetime.timedelta(days=60))
    for feature in features:
        props = feature["properties"]
        assert props["kind"] == "clear-cut" and props["crs"] == "EPSG:32633"
        day = datetime.date.fromisoformat(props["date"])
        assert window[0] <= day <= window[1]
        native = shapely.from_wkt(props["native_wkt"])
        assert props["area_ha"] == pytest.approx(native.area / 1e4, rel=1e-3)
        assert props["n_pixels"] * 0.04 == pytest.approx(props["area_ha"], rel=0.5)
        lonlat = shapely.geometry.shape(feature["geometry"])
        assert lonlat.is_valid and lonlat.exterior.is_ccw
        assert 14.9 < lonlat.centroid.x < 15.1 and 48.6 < lonlat.centroid.y < 48.8
        shapes.append((native, (day - EPOCH).days))
    expected = rasterize(shapes, out_shape=shape, transform=transform, dtype="uint16")
    assert np.array_equal(expected, truth)
    counts = {code: int((truth == code).sum()) for code in np.unique(truth[truth > 0])}
    assert sorted(counts.values()) == sorted(f["properties"]["n_pixels"] for f in features)
    # Cuts sit fully inside forest and never overlap.
    assert forest[truth > 0].all()
    natives = [s for s, _ in shapes]
    assert all(not a.intersects(b) for i, a in enumerate(natives) for b in natives[i + 1 :])


# ---------------------------------------------------------------------------------------------- STAC


def test_catalog_readable_with_existing_absolute_assets(archive: DemoArchive) -> None:
    catalog = pystac.Catalog.from_file(str(archive.catalog_path))
    assert catalog.id == "demo"
    collection = catalog.get_child(SPEC.collection_id)
    assert isinstance(collection, pystac.Collection)
    assert collection.license == "CC-BY-4.0"
    items = list(catalog.get_items(recursive=True))
    assert [item.datetime for item in items] == archive.dates
    assert {item.properties["platform"] for item in items} == {"sentinel-2a", "sentinel-2b"}
    for item in items:
        assert item.collection_id == SPEC.collection_id
        assert Path(item.get_self_href()).parent == archive.root / "items" / item.id
        assert set(item.assets) == set(ASSETS)
        for asset in item.assets.values():
            href = asset.get_absolute_href()
            assert href is not None and Path(href).is_absolute() and Path(href).exists()
            assert asset.media_type == pystac.MediaType.COG and asset.roles == ["data"]
    first = items[0]
    assert first.properties["proj:code"] == "EPSG:32633"
    assert first.properties["proj:shape"] == [64, 64]
    assert first.properties["proj:bbox"] == [500000.0, 5398720.0, 501280.0, 5400000.0]
    red_band = first.assets["red"].extra_fields["raster:bands"][0]
    assert red_band == {
        "nodata": 0,
        "data_type": "uint16",
        "spatial_resolution": 20.0,
        "scale": 0.0001,
        "offset": -0.1,
    }
    assert first.assets["nir08"].extra_fields["eo:bands"][0]["common_name"] == "nir08"
    (lo, hi) = collection.extent.temporal.intervals[0]
    assert (lo, hi) == (archive.dates[0], archive.dates[-1])


@pytest.fixture(scope="module")
def offline() -> tuple[JsonSchemaSTACValidator, set[str]]:
    validator, available = offline_validator()
    needed = {
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    }
    if not needed <= available:
        pytest.skip("vendored STAC extension schemas not found")
    return validator, available


def test_stac_validates_offline(archive: DemoArchive, offline: tuple[JsonSchemaSTACValidator, set[str]]) -> None:
    validator, available = offline
    for path in [archive.catalog_path, *archive.root.glob("*/collection.json")]:
        assert validate_offline(json.loads(path.read_text()), validator, available) == []
    for when in archive.dates:
        item_id, folder = item_folder(archive, when)
        obj = json.loads((folder / f"{item_id}.json").read_text())
        skipped = validate_offline(obj, validator, available)
        # No offline eo schema: only eo may be skipped; check its few fields by hand instead.
        assert skipped == [EO_URI]
        assert 0 <= obj["properties"]["eo:cloud_cover"] <= 100
        for key in REFLECTANCE:
            (band,) = obj["assets"][key]["eo:bands"]
            assert band["common_name"] == key and band["name"].startswith("B")


def test_broken_item_fails_offline_validation(
    archive: DemoArchive, offline: tuple[JsonSchemaSTACValidator, set[str]]
) -> None:
    validator, available = offline
    item_id, folder = item_folder(archive, archive.dates[0])
    obj = json.loads((folder / f"{item_id}.json").read_text())
    obj["properties"]["proj:shape"] = [64]
    with pytest.raises(pystac.STACValidationError):
        validate_offline(obj, validator, available)


# ---------------------------------------------------------------------------------------------- default unchanged

# sha256 of each asset's (time, rows, cols) uint16/uint8 stack, of the ground truth and of the forest mask for SPEC,
# computed with the generator before scenarios and swir22 existed: the default must never change.
SPEC_SHA256 = {
    "green": "29f1e96e1c15c918cab2a7fe8eccc146f7d519a5b5ccc4087e1dfe94675580ba",
    "red": "c4b484b6d405a31b395159ce5dfc3bac89299249d15dae2a3745098ec021cec9",
    "nir08": "b68b8f9c60ca060bed91304456391f82e9799bb509f3c6f16565621d210d1837",
    "swir16": "bff3725e12b8df2c0f66c52a3fe2a400b63244c1298b06e35c107d989236cdcb",
    "scl": "9de8a082d8d57ea0db7ad3dcd591adafabbfeafb35f144ec06f79e8ac30fe094",
    "ground_truth": "8aee849b071d32615f00fcc3a531a7fd7e84f13533f7eb72ddc452f8f1a77bfb",
    "forest_mask": "b6a6cf5e583d2579ba7a7c44da1f6f3ca4fe9b5143e216407794f4ab772bf66a",
    "dates": "da52ddf1cc9467c44ef1b412c7682c94f23f39a2c4e91e369fb44e248994e789",
}
# The same for the GeoJSON (json.dumps(..., sort_keys=True)), without the properties added since.
SPEC_GEOJSON_SHA256 = "1d395ce059d4bbd4941d3efd151a87fc47868ed23e60dfb970e2f761471c08cd"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_default_scenario_output_unchanged(
    archive: DemoArchive, stacks: dict[str, np.ndarray], truth: np.ndarray, forest: np.ndarray
) -> None:
    assert archive.spec.scenario == "clear-cut"
    found = {asset: sha256(stacks[asset].tobytes()) for asset in ("green", "red", "nir08", "swir16", "scl")}
    found["ground_truth"] = sha256(truth.tobytes())
    found["forest_mask"] = sha256(forest.astype(np.uint8).tobytes())
    found["dates"] = sha256(str([d.isoformat() for d in archive.dates]).encode())
    assert found == SPEC_SHA256
    collection = json.loads(archive.ground_truth_path.read_text())
    for feature in collection["features"]:
        props = feature["properties"]
        assert props.pop("disturbance") is True and props.pop("end") is None
    assert sha256(json.dumps(collection, sort_keys=True).encode()) == SPEC_GEOJSON_SHA256


def test_swir22_plausible_for_every_cover(stacks: dict[str, np.ndarray], forest: np.ndarray, truth: np.ndarray) -> None:
    swir16, swir22 = reflectance(stacks["swir16"]), reflectance(stacks["swir22"])
    scl = stacks["scl"]
    stable_forest = (scl == 4) & (forest & (truth == 0))[None]
    assert 0.06 < np.median(swir22[stable_forest]) < 0.11
    assert np.median(swir22[stable_forest] / swir16[stable_forest]) == pytest.approx(0.47, abs=0.05)
    assert np.median(swir22[scl == 6]) < 0.03
    # Bare soil (cut slash, ploughed fields) is bright in both SWIR bands.
    assert np.median(swir22[(scl == 5)]) > 0.15
    thick = np.isin(scl, (8, 9))
    assert 0.2 < np.median(swir22[thick]) < 0.4
    assert np.median(swir22[thick]) < np.median(swir16[thick])
    # Only swir22 may be nodata-free where others are not: the orbit-edge strip covers every band alike.
    assert ((stacks["swir22"] == 0) == (scl == 0)).all()


# ---------------------------------------------------------------------------------------------- scenarios

DISTURBANCES = {"clear-cut", "degradation", "selective-logging", "fire"}
SCENARIO_KIND = {scenario: scenario for scenario in SCENARIOS} | {"non-forest": "non-forest-change"}
WINDOW = (SPEC.disturbance_start, SPEC.end - datetime.timedelta(days=60))


@dataclass
class ScenarioRun:
    """One scenario's archive of SPEC, read back."""

    archive: DemoArchive
    stacks: dict[str, np.ndarray]
    features: list[dict]
    truth: np.ndarray
    kinds: np.ndarray


@pytest.fixture(scope="module")
def scenario_run(
    tmp_path_factory: pytest.TempPathFactory, archive: DemoArchive, stacks: dict[str, np.ndarray], truth: np.ndarray
) -> Callable[[str], ScenarioRun]:
    """Generate (once) and read the archive of SPEC for a scenario; clear-cut is the default archive."""
    runs: dict[str, ScenarioRun] = {}

    def get(scenario: str) -> ScenarioRun:
        if scenario not in runs:
            if scenario == "clear-cut":
                run_archive, run_stacks = archive, stacks
            else:
                spec = SPEC.model_copy(update={"scenario": scenario})
                run_archive = generate_demo(tmp_path_factory.mktemp(scenario), spec)
                run_stacks = {asset: read_stack(run_archive, asset) for asset in ASSETS}
            features = json.loads(run_archive.ground_truth_path.read_text())["features"]
            runs[scenario] = ScenarioRun(
                run_archive,
                run_stacks,
                features,
                read(run_archive.ground_truth_raster_path),
                read(run_archive.ground_truth_kind_path),
            )
        return runs[scenario]

    return get


def feature_mask(feature: dict) -> np.ndarray:
    """Pixels whose centre the feature's native geometry holds."""
    native = shapely.from_wkt(feature["properties"]["native_wkt"])
    transform = Affine(SPEC.resolution, 0.0, SPEC.origin_x, 0.0, -SPEC.resolution, SPEC.origin_y)
    return rasterize([(native, 1)], out_shape=(SPEC.height, SPEC.width), transform=transform, dtype="uint8") > 0


def index_stack(stacks: dict[str, np.ndarray], a: str, b: str) -> np.ndarray:
    """(a - b) / (a + b) per acquisition, NaN where the SCL is not clear."""
    ra, rb = reflectance(stacks[a]), reflectance(stacks[b])
    out = (ra - rb) / (ra + rb)
    out[~np.isin(stacks["scl"], VALID_SCL)] = np.nan
    return out


def days_after(archive: DemoArchive, feature: dict) -> np.ndarray:
    start = datetime.date.fromisoformat(feature["properties"]["date"])
    return np.array([(d.date() - start).days for d in archive.dates])


def duration(feature: dict) -> int:
    props = feature["properties"]
    return (datetime.date.fromisoformat(props["end"]) - datetime.date.fromisoformat(props["date"])).days


def ndvi_change(run: ScenarioRun, baseline: dict[str, np.ndarray]) -> np.ndarray:
    """Scenario NDVI minus the default archive's: same noise and clouds, so exactly the planted effect."""
    return index_stack(run.stacks, "nir08", "red") - index_stack(baseline, "nir08", "red")


def test_scenario_names_and_kind_codes() -> None:
    assert SCENARIOS == ("clear-cut", "degradation", "selective-logging", "fire", "drought", "haze", "non-forest")
    assert set(KIND_CODES) == set(SCENARIO_KIND.values())
    assert sorted(KIND_CODES.values()) == list(range(1, len(KIND_CODES) + 1))
    assert DemoSpec().scenario == "clear-cut"
    with pytest.raises(ValidationError):
        DemoSpec(scenario="flood")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_ground_truth_consistent(
    scenario: str,
    scenario_run: Callable[[str], ScenarioRun],
    archive: DemoArchive,
    stacks: dict[str, np.ndarray],
    truth: np.ndarray,
    forest: np.ndarray,
) -> None:
    run = scenario_run(scenario)
    kind = SCENARIO_KIND[scenario]
    assert run.features, "every scenario plants something"
    expected_truth = np.zeros_like(run.truth)
    expected_kinds = np.zeros_like(run.kinds)
    for feature in run.features:
        props = feature["properties"]
        assert {"kind", "date", "end", "disturbance", "area_ha", "n_pixels", "native_wkt", "crs"} <= set(props)
        assert props["kind"] == kind and props["disturbance"] is (kind in DISTURBANCES)
        assert props["crs"] == "EPSG:32633"
        start = datetime.date.fromisoformat(props["date"])
        assert WINDOW[0] <= start <= WINDOW[1]
        assert props["end"] is None or duration(feature) > 0
        native = shapely.from_wkt(props["native_wkt"])
        assert native.is_valid
        assert props["area_ha"] == pytest.approx(native.area / 1e4, rel=1e-3)
        mask = feature_mask(feature)
        assert mask.sum() == props["n_pixels"] > 0
        lonlat = shapely.geometry.shape(feature["geometry"])
        assert lonlat.is_valid
        for part in getattr(lonlat, "geoms", [lonlat]):
            assert part.exterior.is_ccw and not any(ring.is_ccw for ring in part.interiors)
        if props["disturbance"]:
            expected_truth[mask] = (start - EPOCH).days
        expected_kinds[mask] = KIND_CODES[kind]
    assert np.array_equal(run.truth, expected_truth)
    assert np.array_equal(run.kinds, expected_kinds)
    if kind not in DISTURBANCES:
        assert not run.truth.any()
    with rasterio.open(run.archive.ground_truth_kind_path) as src:
        assert src.dtypes[0] == "uint8"
        assert json.loads(src.tags()["KIND_CODES"]) == KIND_CODES

    # Same land cover, dates, noise and clouds as the default: outside both archives' events nothing differs.
    assert run.archive.dates == archive.dates
    assert np.array_equal(read(run.archive.forest_mask_path).astype(bool), forest)
    untouched = (run.kinds == 0) & (truth == 0)
    for asset in ASSETS:
        assert np.array_equal(run.stacks[asset][:, untouched], stacks[asset][:, untouched]), asset


def test_degradation_declines_gradually(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray
) -> None:
    run = scenario_run("degradation")
    change = ndvi_change(run, stacks)
    swir_change = reflectance(run.stacks["swir16"]) - reflectance(stacks["swir16"])
    for feature in run.features:
        mask = feature_mask(feature) & (truth == 0)
        days = days_after(run.archive, feature)
        length = duration(feature)
        assert 183 <= length <= 548
        seen = np.isfinite(change[:, mask]).any(axis=1)
        series = np.full(seen.shape, np.nan)
        series[seen] = np.nanmedian(change[seen][:, mask], axis=1)
        assert np.abs(series[seen & (days <= 0)]).max() < 0.003
        ramp = seen & (days > 0) & (days <= length)
        d, s = days[ramp], series[ramp]
        assert d.size >= 5
        # Linear in time: NDVI = -total * days / duration; the fitted total lies in 0.15-0.35.
        slope = float(np.sum(d * s) / np.sum(d * d))
        assert 0.14 < -slope * length < 0.36
        assert np.abs(s - slope * d).max() < 0.02
        # Not one step: a month in, at most a fifth of the largest possible total decline has happened.
        assert (np.abs(s[d <= 30]) < 0.35 * 30 / 183 + 0.01).all()
        # SWIR rises with the canopy loss.
        last = np.flatnonzero(ramp)[-1]
        assert np.nanmedian(swir_change[last][mask]) > 0.01


def test_selective_logging_gaps_drop_then_regrow(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray
) -> None:
    run = scenario_run("selective-logging")
    change = ndvi_change(run, stacks)
    assert len(run.features) > len(run.truth[run.truth > 0]) / 6 - 1
    implied, after_recovery, sizes = [], [], []
    for feature in run.features:
        mask = feature_mask(feature) & (truth == 0)
        if not mask.any():
            continue
        sizes.append(feature["properties"]["n_pixels"])
        days = days_after(run.archive, feature)
        recovery = duration(feature)
        assert 90 <= recovery <= 183
        values = change[:, mask]
        before = values[days < 0]
        assert (np.abs(before[np.isfinite(before)]) < 0.003).all()
        during = (days >= 0) & (days < recovery - 10)
        # The drop decays linearly to zero at the recovery date: drop(t) = magnitude * (1 - t / recovery).
        magnitude = -values[during] / (1 - days[during] / recovery)[:, None]
        implied.extend(magnitude[np.isfinite(magnitude)])
        recovered = values[days >= recovery]
        after_recovery.extend(recovered[np.isfinite(recovered)])
    assert 1 <= min(sizes) and max(sizes) <= 6
    implied = np.array(implied)
    assert implied.size > 20
    assert (np.abs(implied - 0.3) <= 0.1 + 0.005).mean() > 0.95
    # Back at the forest's own level within six months.
    assert len(after_recovery) > 20 and np.abs(after_recovery).max() < 0.003


def test_fire_scars_charred_and_slow_to_recover(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray
) -> None:
    run = scenario_run("fire")
    ndvi_now = index_stack(run.stacks, "nir08", "red")
    nbr_now = index_stack(run.stacks, "nir08", "swir22")
    nbr_before = index_stack(stacks, "nir08", "swir22")
    nir_ratio = reflectance(run.stacks["nir08"]) / reflectance(stacks["nir08"])
    swir_change = reflectance(run.stacks["swir16"]) - reflectance(stacks["swir16"])
    for feature in run.features:
        mask = feature_mask(feature) & (truth == 0)
        assert feature["properties"]["area_ha"] >= 2.0
        days = days_after(run.archive, feature)
        soon = (days >= 0) & (days <= 45)
        assert np.isfinite(ndvi_now[soon][:, mask]).sum() > 50
        assert 0.08 < np.nanmedian(ndvi_now[soon][:, mask]) < 0.27
        assert np.nanpercentile(ndvi_now[soon][:, mask], 95) < 0.3
        assert np.nanmedian(nbr_before[days < 0][:, mask]) > 0.4
        assert np.nanmedian(nbr_now[soon][:, mask]) < -0.2
        assert np.nanmedian(index_stack(run.stacks, "nir08", "swir16")[soon][:, mask]) < -0.2
        assert np.nanmedian(swir_change[soon][:, mask]) > 0.05
        assert np.nanmedian(nir_ratio[soon][:, mask]) < 0.5
        # Slow recovery: still far from forest at the end of the archive.
        assert np.nanmedian(ndvi_now[days >= 0][-10:, mask]) < 0.35


def test_drought_dips_forest_ndvi_temporarily(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray, forest: np.ndarray
) -> None:
    run = scenario_run("drought")
    assert not run.truth.any()
    change = ndvi_change(run, stacks)
    covered = np.zeros_like(forest)
    for feature in run.features:
        props = feature["properties"]
        assert props["disturbance"] is False
        mask = feature_mask(feature)
        covered |= mask
        assert forest[mask].all()
        start = datetime.date.fromisoformat(props["date"])
        # Early summer (give or take the regions' jitter) of the first year the window allows.
        first_summer = SPEC.disturbance_start.year + (SPEC.disturbance_start.month > 7)
        assert start.year == first_summer and datetime.date(start.year, 5, 20) <= start <= datetime.date(
            start.year, 7, 26
        )
        length = duration(feature)
        assert 60 <= length <= 122
        days = days_after(run.archive, feature)
        mask &= truth == 0
        plateau = change[(days >= 14) & (days <= length - 14)][:, mask]
        plateau = plateau[np.isfinite(plateau)]
        assert plateau.size > 100
        assert (plateau <= -0.05 + 0.003).mean() > 0.97 and (plateau >= -0.12 - 0.003).mean() > 0.97
        # Before and after the drought every band is exactly what the default archive holds.
        outside = (days <= 0) | (days >= length)
        for asset in ASSETS:
            assert np.array_equal(run.stacks[asset][outside][:, mask], stacks[asset][outside][:, mask])
    assert covered.sum() > 0.2 * forest.sum(), "drought hits large areas"


def test_haze_brightens_clear_labelled_acquisitions(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray, forest: np.ndarray
) -> None:
    run = scenario_run("haze")
    assert not run.truth.any()
    change = ndvi_change(run, stacks)
    for feature in run.features:
        assert feature["properties"]["disturbance"] is False
        length = duration(feature)
        assert 14 <= length <= 42
        days = days_after(run.archive, feature)
        during = (days >= 0) & (days < length)
        assert during.sum() >= 2
        mask = feature_mask(feature)
        assert mask.mean() > 0.1
        trees = mask & forest & (truth == 0)
        clear_before = stacks["scl"][during][:, trees] == 4
        scl_now = run.stacks["scl"][during][:, trees][clear_before]
        # The scene classification misses the haze: still clear (vegetation, rarely not-vegetated), never cloud.
        assert np.isin(scl_now, (4, 5)).all() and (scl_now == 4).mean() > 0.95
        values = change[during][:, trees][clear_before]
        assert (values <= -0.1 + 0.005).mean() > 0.97 and (values >= -0.3 - 0.005).mean() > 0.97
        for asset in ("green", "red"):
            brighter = (
                run.stacks[asset][during][:, trees][clear_before].astype(int)
                - stacks[asset][during][:, trees][clear_before]
            )
            assert (brighter > 0).mean() > 0.99
        outside = ~during
        unplanted = mask & (truth == 0)
        for asset in ASSETS:
            assert np.array_equal(run.stacks[asset][outside][:, unplanted], stacks[asset][outside][:, unplanted])


def test_non_forest_changes_leave_forest_untouched(
    scenario_run: Callable[[str], ScenarioRun], stacks: dict[str, np.ndarray], truth: np.ndarray, forest: np.ndarray
) -> None:
    run = scenario_run("non-forest")
    assert not run.truth.any()
    assert not (run.kinds > 0)[forest].any()
    stable_forest = forest & (truth == 0)
    for asset in ASSETS:
        assert np.array_equal(run.stacks[asset][:, stable_forest], stacks[asset][:, stable_forest])
    change = ndvi_change(run, stacks)
    for feature in run.features:
        props = feature["properties"]
        assert props["disturbance"] is False and props["end"] is None
        assert props["detail"] in {"grassland-ploughed", "cropland-ploughed", "grassland-built-up", "cropland-built-up"}
        mask = feature_mask(feature)
        days = days_after(run.archive, feature)
        assert np.abs(change[days < 0][:, mask][np.isfinite(change[days < 0][:, mask])]).max() < 0.003
        # Built over or ploughed: some band changes clearly (NDVI alone may not, on bare autumn fields).
        clear = np.isin(run.stacks["scl"][days >= 0][:, mask], VALID_SCL)
        largest = max(
            np.abs(reflectance(run.stacks[a][days >= 0][:, mask]) - reflectance(stacks[a][days >= 0][:, mask]))[
                clear
            ].max()
            for a in REFLECTANCE
        )
        assert largest > 0.03, "the land use really changes"
