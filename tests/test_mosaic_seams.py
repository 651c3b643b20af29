"""Mosaic VRTs: no seam between tiles, and an update of one tile writes one COG set and one small VRT per layer."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.warp import transform
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.utils import render

from catalog.encoding import Status, context_colormap, status_colormap
from catalog.layers import PUBLISHED_LAYERS
from catalog.mosaic import AreaGrid
from catalog.publish import Publisher, TileReport
from catalog.store import CatalogLayout, Publication, read_index
from catalog.tree import month_of
from server.app import create_app
from server.settings import ServerSettings

from conftest import TILE_SIZE, DemoRun

TMS = morecantile.tms.get("WebMercatorQuad")
LEFT, RIGHT = "r000c000", "r000c001"
ALERTS = [Status.PROVISIONAL_LOW, Status.CONFIRMED_LOW, Status.PROVISIONAL_HIGH, Status.CONFIRMED_HIGH]


def _cog(layout: CatalogLayout, item_id: str, asset: str) -> Path:
    return layout.item_path(item_id).parent / f"{item_id}_{asset}.tif"


def _seam_tiles(vrt: Path, zoom: int) -> list[morecantile.Tile]:
    """Tiles at `zoom` crossed by the seam between the two demo tiles (the column TILE_SIZE of the area)."""
    with rasterio.open(vrt) as src:
        rows = np.linspace(1, src.height - 1, 7)
        xs, ys = src.transform @ (np.full_like(rows, TILE_SIZE), rows)
        lons, lats = transform(src.crs, "EPSG:4326", list(xs), list(ys))
    tiles = []
    for lon, lat in zip(lons, lats, strict=True):
        tile = TMS.tile(lon, lat, zoom)
        west, _, east, _ = TMS.bounds(tile)
        # The seam runs through the tile, not along its edge: both tiles' pixels are in it.
        if west + (east - west) / 8 < lon < east - (east - west) / 8 and tile not in tiles:
            tiles.append(tile)
    return tiles


def _from_single_cogs(cogs: list[Path], tile: morecantile.Tile) -> ImageData:
    """The tile rendered from each item's own COG and merged, without the VRT."""

    def tiler(path: Path, x: int, y: int, z: int) -> ImageData:
        with Reader(str(path)) as src:
            return src.tile(x, y, z)

    image, used = mosaic_reader([str(c) for c in cogs], tiler, tile.x, tile.y, tile.z)
    assert sorted(used) == sorted(str(c) for c in cogs), "both tiles' COGs must reach into a seam tile"
    return image


def _assert_same(mosaic: ImageData, single: ImageData) -> None:
    np.testing.assert_array_equal(mosaic.mask, single.mask)
    valid = mosaic.mask > 0
    np.testing.assert_array_equal(mosaic.data[0][valid], single.data[0][valid])


@pytest.mark.parametrize("zoom", [14, 15])
def test_seam_tile_is_pixel_identical_to_the_single_cogs(static_run: DemoRun, zoom: int) -> None:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    latest = read_index(layout).latest
    tiles = _seam_tiles(layout.collection_dir / latest.mosaics["status"], zoom)
    assert tiles, f"no z{zoom} tile straddles the seam"
    checked_alerts = 0
    with TestClient(create_app(ServerSettings(stac_dir=layout.root))) as client:
        for tile in tiles:
            for layer in PUBLISHED_LAYERS:
                with Reader(str(layout.collection_dir / latest.mosaics[layer.asset])) as src:
                    mosaic = src.tile(tile.x, tile.y, tile.z)
                cogs = [_cog(layout, latest.items[t], layer.asset) for t in (LEFT, RIGHT)]
                single = _from_single_cogs(cogs, tile)
                _assert_same(mosaic, single)
                if layer.asset == "status":
                    checked_alerts += int(np.isin(mosaic.data[0][mosaic.mask > 0], ALERTS).sum())
                    # Data on both sides of the seam: the left and right halves each hold valid pixels.
                    half = mosaic.mask.shape[1] // 2
                    assert (mosaic.mask[:, :half] > 0).any() and (mosaic.mask[:, half:] > 0).any()
                    # And the PNG the server sends is that of the single COGs, in the alert colours.
                    url = f"/layers/alerts/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"
                    for style, colours in (("alerts", status_colormap()), ("context", context_colormap())):
                        served = client.get(url, params={"colormap_name": style})
                        assert served.status_code == 200
                        expected = render(single.data, single.mask, colormap=colours)
                        np.testing.assert_array_equal(_decode(served.content), _decode(expected))
    assert checked_alerts > 100, "the seam tiles must cross alerts for the colours to be compared"


def _decode(png: bytes) -> np.ndarray:
    with rasterio.MemoryFile(io.BytesIO(png)) as mem, mem.open() as src:
        return src.read()


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden lock and temp files aside) with a hash of its content."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def copy_catalog(run: DemoRun, target: Path) -> CatalogLayout:
    """A private copy of the published catalog that a test may publish into."""
    shutil.copytree(run.cfg.output.stac_dir, target)
    return CatalogLayout(target)


def publish_one_tile(layout: CatalogLayout, tile_id: str, status: int = Status.CONFIRMED_HIGH) -> Publication:
    """Publish a new report of one tile (every monitored pixel set to `status`) five days after the latest."""
    latest = read_index(layout).latest
    with rasterio.open(layout.collection_dir / latest.mosaics["status"]) as src:
        grid = AreaGrid(src.crs, src.transform, src.width, src.height)
    item_id = latest.items[tile_id]
    item = json.loads(layout.item_path(item_id).read_text())
    layers = {}
    for asset in ("status", "date", "confirmed", "magnitude", "confidence"):
        with rasterio.open(_cog(layout, item_id, asset)) as src:
            layers[asset] = src.read(1)
            crs, affine = src.crs, src.transform
    when = latest.datetime + dt.timedelta(days=5)
    layers["status"] = np.where(layers["status"] < Status.NOT_MONITORED, status, layers["status"]).astype(np.uint8)
    properties = {k: v for k, v in item["properties"].items() if k.startswith("nrt:") and k != "nrt:tile"}
    report = TileReport(tile_id, when, crs, affine, layers, properties)
    publisher = Publisher(layout.root, grid, title="Forest disturbance alerts")
    publication = publisher.publish([report], now=when + dt.timedelta(hours=1))
    assert publication is not None
    return publication


def test_updating_one_tile_writes_one_cog_set_and_one_small_vrt_per_layer(static_run: DemoRun, tmp_path: Path) -> None:
    layout = copy_catalog(static_run, tmp_path / "stac")
    previous = read_index(layout).latest
    before = _snapshot(layout.root)
    publication = publish_one_tile(layout, RIGHT)
    after = _snapshot(layout.root)

    assert set(before) <= set(after), "nothing published may disappear"
    changed = {path for path in before if before[path] != after[path]}
    added = sorted(set(after) - set(before))
    # The new item's month catalog links it (a new file when the month is new).
    month_catalog = f"alerts/months/{month_of(publication.datetime)}/catalog.json"
    assert month_catalog in changed | set(added)
    assert changed - {month_catalog} == {"alerts/collection.json", "alerts/publications.json"}
    new_item = publication.items[RIGHT]
    item_dir = f"alerts/items/{new_item}"
    assert [p for p in added if p.startswith(item_dir)] == sorted(
        [f"{item_dir}/{new_item}_{layer.asset}.tif" for layer in PUBLISHED_LAYERS]
        + [f"{item_dir}/{new_item}_visual.tif", f"{item_dir}/{new_item}_thumbnail.png", f"{item_dir}/{new_item}.json"]
    )
    mosaic_dir = f"alerts/mosaics/{publication.id}"
    assert [p for p in added if not p.startswith(item_dir) and p != month_catalog] == sorted(
        f"{mosaic_dir}/{layer.asset}.vrt" for layer in PUBLISHED_LAYERS
    )
    # The untouched tile is not rewritten: the new mosaics point at its previous COGs.
    assert publication.items[LEFT] == previous.items[LEFT]
    for layer in PUBLISHED_LAYERS:
        vrt = layout.collection_dir / publication.mosaics[layer.asset]
        size = vrt.stat().st_size
        # A VRT is a few lines per tile; status also carries its 256-entry colour table (about 8 kB) for QGIS.
        limit = 16_000 if layer.asset == "status" else 10_000
        assert size < limit, f"{vrt.name} is {size} bytes"
        old = (layout.collection_dir / previous.mosaics[layer.asset]).stat().st_size
        assert abs(size - old) < 64, "a VRT's size does not depend on the data"
        with rasterio.open(vrt) as src:
            files = {Path(f).name for f in src.files[1:]}
        assert files == {f"{previous.items[LEFT]}_{layer.asset}.tif", f"{new_item}_{layer.asset}.tif"}
