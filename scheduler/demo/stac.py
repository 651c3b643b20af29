"""STAC items, collection and the self-contained static catalog of the demo archive."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pystac
import shapely
from pystac.extensions.eo import Band as EOBand
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from scheduler.demo import scl as SCL
from scheduler.demo.bands import NODATA, OFFSET, REFLECTANCE_BANDS, SCALE, SCL_KEY
from scheduler.demo.grid import Grid
from scheduler.demo.schedule import Acquisition
from scheduler.demo.spec import DemoSpec

CATALOG_ID = "demo"
LICENSE = "CC-BY-4.0"
CONSTELLATION = "sentinel-2"


def item_paths(root: Path, item_id: str) -> tuple[Path, dict[str, Path]]:
    """Where an item's JSON and each of its asset files live."""
    folder = root / "items" / item_id
    assets = {b.key: folder / f"{item_id}_{b.key}.tif" for b in REFLECTANCE_BANDS}
    assets[SCL_KEY] = folder / f"{item_id}_{SCL_KEY}.tif"
    return folder / f"{item_id}.json", assets


def build_item(acq: Acquisition, grid: Grid, footprint: shapely.Polygon, root: Path, cloud_cover: float) -> pystac.Item:
    """Build the STAC item of one acquisition, with absolute asset hrefs (made relative when saved)."""
    item_path, asset_paths = item_paths(root, acq.item_id)
    item = pystac.Item(
        id=acq.item_id,
        geometry=json.loads(shapely.to_geojson(footprint)),
        bbox=list(footprint.bounds),
        datetime=acq.datetime,
        properties={"platform": acq.platform, "constellation": CONSTELLATION, "instruments": ["msi"]},
    )
    item.common_metadata.gsd = grid.resolution
    item.set_self_href(str(item_path))

    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = grid.crs_code
    proj.shape = list(grid.shape)
    proj.transform = list(grid.transform)[:6]
    proj.bbox = list(grid.bounds)
    EOExtension.ext(item, add_if_missing=True).cloud_cover = cloud_cover
    RasterExtension.add_to(item)

    for band in REFLECTANCE_BANDS:
        asset = _cog_asset(asset_paths[band.key], band.title)
        item.add_asset(band.key, asset)
        RasterExtension.ext(asset).bands = [
            RasterBand.create(
                nodata=NODATA,
                data_type=DataType.UINT16,
                spatial_resolution=grid.resolution,
                scale=SCALE,
                offset=OFFSET,
            )
        ]
        EOExtension.ext(asset).bands = [
            EOBand.create(
                name=band.name,
                common_name=band.key,
                center_wavelength=band.center_wavelength,
                full_width_half_max=band.fwhm,
            )
        ]
    scl = _cog_asset(asset_paths[SCL_KEY], "Scene classification map (SCL)")
    scl.description = SCL.DESCRIPTION
    item.add_asset(SCL_KEY, scl)
    RasterExtension.ext(scl).bands = [
        RasterBand.create(nodata=SCL.NO_DATA, data_type=DataType.UINT8, spatial_resolution=grid.resolution)
    ]
    return item


def _cog_asset(path: Path, title: str) -> pystac.Asset:
    """Make a data asset pointing at a COG."""
    return pystac.Asset(href=str(path), media_type=pystac.MediaType.COG, roles=["data"], title=title)


def save_catalog(root: Path, spec: DemoSpec, grid: Grid, items: list[pystac.Item]) -> Path:
    """Write the collection and items, then catalog.json last; return the catalog's path."""
    bbox = list(grid.footprint_wgs84().bounds)
    times = [item.datetime for item in items if item.datetime is not None]
    first = min(times, default=datetime.datetime.combine(spec.start, datetime.time(tzinfo=datetime.UTC)))
    last = max(times, default=first)
    collection = pystac.Collection(
        id=spec.collection_id,
        description=(
            "Synthetic Sentinel-2 L2A-like time series generated offline for demos and tests "
            f"(seed {spec.seed}); not real observations."
        ),
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[first, last]])),
        license=LICENSE,
        title="Sentinel-2 L2A demo (synthetic)",
        summaries=pystac.Summaries(
            {
                "platform": sorted({str(item.properties["platform"]) for item in items}),
                "constellation": [CONSTELLATION],
                "gsd": [grid.resolution],
            }
        ),
    )
    catalog = pystac.Catalog(
        id=CATALOG_ID, description="Offline demo archive of synthetic Sentinel-2 L2A imagery.", title="Demo"
    )
    catalog.add_child(collection)
    collection.add_items(items)
    catalog_path = root / "catalog.json"
    catalog.set_self_href(str(catalog_path))
    collection.set_self_href(str(root / spec.collection_id / "collection.json"))
    for item in items:
        # add_items re-homes items under the collection; put them back into root/items/{id}/.
        item.set_self_href(str(item_paths(root, item.id)[0]))
    catalog.make_all_asset_hrefs_relative()
    # pystac saves children and items before the catalog itself, so catalog.json is written last.
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return catalog_path
