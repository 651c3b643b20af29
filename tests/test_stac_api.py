"""Real STAC API round trip: static catalog -> pgstac -> stac-fastapi-pgstac -> pystac-client -> rasterio."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pystac
import pytest
import rasterio
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac_client import Client
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds, transform_geom

from stac_api import require_postgres, running_stac_api

pytestmark = pytest.mark.pgstac

COLLECTION_ID = "sentinel-2-test"
EPSG = 32631
PIXEL = 10.0
SIZE = 16
# 3 x 2 tiles of 160 m on UTM 31N, one acquisition each, 5 days apart; cloud cover 0..90.
ORIGIN_X, ORIGIN_Y = 500_000.0, 5_600_000.0
TILES = [(col, row) for row in range(2) for col in range(3)]
CLOUD_COVER = [0, 10, 30, 50, 70, 90]
START = datetime(2024, 6, 1, 10, 30, tzinfo=UTC)
ITEM_IDS = [f"S2_tile{c}{r}_{(START + timedelta(days=5 * i)):%Y%m%d}" for i, (c, r) in enumerate(TILES)]
FULL_RANGE = "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"


def _tile_transform(col: int, row: int) -> rasterio.Affine:
    """Affine transform of tile (col, row); rows go south."""
    return from_origin(ORIGIN_X + col * SIZE * PIXEL, ORIGIN_Y - row * SIZE * PIXEL, PIXEL, PIXEL)


def _write_geotiff(path: Path, transform: rasterio.Affine, value: int) -> None:
    """Write a small single-band uint16 GeoTIFF."""
    data = np.full((SIZE, SIZE), value, dtype="uint16")
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint16",
        "crs": f"EPSG:{EPSG}",
        "transform": transform,
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def build_static_catalog(root: Path) -> Path:
    """Write a self-contained static catalog with one collection of 6 items; return catalog.json."""
    catalog = pystac.Catalog(id="test-catalog", description="nrt-alerts test catalog")
    utm_bounds = (ORIGIN_X, ORIGIN_Y - 2 * SIZE * PIXEL, ORIGIN_X + 3 * SIZE * PIXEL, ORIGIN_Y)
    collection = pystac.Collection(
        id=COLLECTION_ID,
        description="Tiny Sentinel-2-like collection",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", *utm_bounds))]),
            pystac.TemporalExtent([[START, START + timedelta(days=5 * (len(TILES) - 1))]]),
        ),
        license="proprietary",
    )
    catalog.add_child(collection)

    items = []
    for i, (col, row) in enumerate(TILES):
        transform = _tile_transform(col, row)
        x0, y1 = transform @ (0, 0)
        x1, y0 = transform @ (SIZE, SIZE)
        utm_geom = {
            "type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
        }
        geom = transform_geom(f"EPSG:{EPSG}", "EPSG:4326", utm_geom)
        xs = [p[0] for p in geom["coordinates"][0]]
        ys = [p[1] for p in geom["coordinates"][0]]
        item = pystac.Item(
            id=ITEM_IDS[i],
            geometry=geom,
            bbox=[min(xs), min(ys), max(xs), max(ys)],
            datetime=START + timedelta(days=5 * i),
            properties={},
        )
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.code = f"EPSG:{EPSG}"
        proj.shape = [SIZE, SIZE]
        proj.transform = list(transform)[:6]
        proj.bbox = [x0, y0, x1, y1]
        EOExtension.ext(item, add_if_missing=True).cloud_cover = CLOUD_COVER[i]
        # Placeholder href: the real relative one is set once the item's directory is known.
        asset = pystac.Asset(href="B04.tif", media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset("B04", asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(nodata=0, data_type=DataType.UINT16, scale=0.0001, offset=-0.1)
        ]
        collection.add_item(item)
        items.append((item, transform, i + 1))

    catalog.normalize_hrefs(str(root))
    for item, transform, value in items:
        tif = Path(item.get_self_href()).parent / "B04.tif"
        tif.parent.mkdir(parents=True, exist_ok=True)
        _write_geotiff(tif, transform, value)
        item.assets["B04"].href = "./B04.tif"
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@pytest.fixture(scope="module")
def catalog_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_static_catalog(tmp_path_factory.mktemp("static-catalog"))


@pytest.fixture(scope="module")
def stac_url(catalog_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_postgres()  # CI installs PostgreSQL (.ci/install-system-packages.sh): a gap there fails
    t0 = time.perf_counter()
    workdir = tmp_path_factory.mktemp("stac-api")
    with running_stac_api(catalog_json, workdir, collection_id=COLLECTION_ID) as url:
        print(f"STAC API startup took {time.perf_counter() - t0:.1f} s")
        yield url


def _search_ids(url: str, **kwargs: object) -> list[str]:
    """Ids of the items a search returns, sorted."""
    search = Client.open(url).search(collections=[COLLECTION_ID], **kwargs)
    return sorted(item.id for item in search.items())


def _href_path(href: str) -> Path:
    """Local path of a file:// URI."""
    parsed = urlparse(href)
    assert parsed.scheme == "file", href
    return Path(url2pathname(parsed.path))


def test_static_catalog_uses_relative_asset_hrefs(catalog_json: Path) -> None:
    # The point of the loader is to absolutize these; make sure the fixture really is relative.
    item_json = next(catalog_json.parent.glob(f"{COLLECTION_ID}/*/*.json"))
    assert json.loads(item_json.read_text())["assets"]["B04"]["href"] == "./B04.tif"


def test_cloud_cover_query(stac_url: str, catalog_json: Path) -> None:
    collection = pystac.Collection.from_file(str(catalog_json.parent / COLLECTION_ID / "collection.json"))
    bbox = list(collection.extent.spatial.bboxes[0])
    ids = _search_ids(stac_url, bbox=bbox, datetime=FULL_RANGE, query={"eo:cloud_cover": {"lt": 50}})
    # Cloud cover 0, 10, 30 pass; 50 is not < 50.
    assert ids == sorted(ITEM_IDS[:3])
    assert ids == ["S2_tile00_20240601", "S2_tile10_20240606", "S2_tile20_20240611"]


def test_all_items_loaded(stac_url: str) -> None:
    assert _search_ids(stac_url, datetime=FULL_RANGE) == sorted(ITEM_IDS)


def test_items_keep_properties_and_absolute_hrefs(stac_url: str) -> None:
    items = {
        item.id: item for item in Client.open(stac_url).search(collections=[COLLECTION_ID], datetime=FULL_RANGE).items()
    }
    assert len(items) == len(ITEM_IDS)
    for i, item_id in enumerate(ITEM_IDS):
        item = items[item_id]
        assert item.properties["proj:code"] == f"EPSG:{EPSG}"
        assert item.properties["proj:shape"] == [SIZE, SIZE]
        assert item.properties["eo:cloud_cover"] == CLOUD_COVER[i]
        assert item.datetime == START + timedelta(days=5 * i)
        asset = item.assets["B04"]
        assert asset.extra_fields["raster:bands"][0]["scale"] == 0.0001
        assert asset.href.startswith("file:///"), asset.href
        path = _href_path(asset.href)
        assert path.is_file(), path
        # rasterio accepts file:// URIs directly (rasterio._path maps the scheme to a local path).
        with rasterio.open(asset.href) as src:
            assert src.crs.to_epsg() == EPSG
            assert src.transform == _tile_transform(*TILES[i])
            assert int(src.read(1)[0, 0]) == i + 1


def test_datetime_range_excludes_items(stac_url: str) -> None:
    # Items are on June 1, 6, 11, 16, 21, 26.
    ids = _search_ids(stac_url, datetime="2024-06-05T00:00:00Z/2024-06-17T00:00:00Z")
    assert ids == ["S2_tile01_20240616", "S2_tile10_20240606", "S2_tile20_20240611"]
    ids = _search_ids(
        stac_url, datetime="2024-06-05T00:00:00Z/2024-06-17T00:00:00Z", query={"eo:cloud_cover": {"lt": 50}}
    )
    assert ids == ["S2_tile10_20240606", "S2_tile20_20240611"]


def test_bbox_excludes_items(stac_url: str) -> None:
    # Centre of tile (0, 0) only.
    x, y = _tile_transform(0, 0) @ (SIZE / 2, SIZE / 2)
    bbox = list(transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", x - 10, y - 10, x + 10, y + 10))
    assert _search_ids(stac_url, bbox=bbox, datetime=FULL_RANGE) == ["S2_tile00_20240601"]
