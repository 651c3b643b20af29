"""Publish tile reports: immutable COGs and STAC items first, then mosaic VRTs, then the catalog pointers last."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
from affine import Affine
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from catalog import atomic, tree
from catalog.cog import write_cog
from catalog.collection import widen
from catalog.encoding import classification_classes, gfw_date_conf, status_colormap
from catalog.errors import PublishError
from catalog.layers import DATE, DATE_CONF, PUBLISHED_LAYERS, STATUS, LayerSpec
from catalog.locking import file_lock
from catalog.mosaic import AreaGrid, MosaicSource, write_vrt
from catalog.series import SERIES_KEY, series_assets
from catalog.store import COLLECTION_ID, CatalogLayout, Publication, read_index
from catalog.thumbnail import THUMBNAIL_MEDIA_TYPE, write_thumbnail

log = logging.getLogger(__name__)

CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
THUMBNAIL = "thumbnail"
THUMBNAIL_TITLE = "Thumbnail"
THUMBNAIL_DESCRIPTION = "The alert status in the alert colours, transparent where there is no alert."
# GeoTIFF palettes carry no alpha, so viewers that read the status COG itself (QGIS, STAC Browser) draw "none" as
# opaque black: this RGBA rendition is what they should show.
VISUAL = "visual"
VISUAL_TITLE = "Alerts (RGBA)"
VISUAL_DESCRIPTION = (
    "The alert status in the legend's colours over transparency (first detections and 'none' transparent), "
    "for viewers; the status asset holds the codes."
)


@dataclass
class TileReport:
    """One tile's alert layers as of its last absorbed acquisition."""

    tile_id: str
    datetime: dt.datetime
    crs: CRS
    transform: Affine
    layers: dict[str, np.ndarray]
    properties: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Rows, columns."""
        return next(iter(self.layers.values())).shape


@dataclass(frozen=True)
class StagedItem:
    """A tile's item written ahead of its publication, while other tiles still run; a later publication names it."""

    tile_id: str
    datetime: dt.datetime  # the report's data time
    item: dict  # the item JSON as written


def _stamp(value: dt.datetime) -> str:
    """Compact UTC timestamp used in ids: 20240612 for midnight-free dates is not unique enough."""
    return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


def item_id_for(tile_id: str, data_time: dt.datetime) -> str:
    """The id of a tile's report as of `data_time` (a suffix -2, -3 is added if it already exists)."""
    return f"{tile_id}-{_stamp(data_time)}"


def item_data_time(tile_id: str, item_id: str) -> dt.datetime:
    """The data time encoded in an item id made by item_id_for."""
    stamp = item_id.removeprefix(f"{tile_id}-").split("-")[0]
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Publisher:
    """Writes reports into the output STAC catalog; one publication per call, serialised by a lock."""

    def __init__(self, stac_dir: Path, grid: AreaGrid, *, title: str, license: str = "CC-BY-4.0") -> None:
        self.layout = CatalogLayout(stac_dir)
        self.grid = grid
        self.title = title
        self.license = license

    @contextlib.contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[None]:
        """Hold the publication lock: what is published cannot change while it is held.

        `shared` is enough to stage items (stage_locked): tiles' items are written side by side, and a publication
        waits until they are complete.
        """
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.layout.lock_path, shared=shared):
            yield

    def publish(self, reports: Sequence[TileReport], *, now: dt.datetime | None = None) -> Publication | None:
        """Take the lock and publish the reports; None when there is nothing to publish."""
        with self.lock():
            return self.publish_locked(reports, now=now)

    def publish_locked(
        self,
        reports: Sequence[TileReport | StagedItem | Callable[[], TileReport | None]],
        *,
        now: dt.datetime | None = None,
        threads: int = 1,
    ) -> Publication | None:
        """Publish reports as new items and a new mosaic version; the caller holds `lock()`.

        A report may come as a function that makes it (None: nothing to publish for that tile), so that reports
        are made and written `threads` at a time, never all held in memory at once; or as an item `stage_locked`
        wrote already.
        """
        if not reports:
            return None
        now = now or dt.datetime.now(dt.UTC)
        index = read_index(self.layout)
        # Leftovers of a publication killed midway (we hold the lock, so no writer owns them).
        for folder in (self.layout.root, self.layout.collection_dir):
            atomic.remove_temps(folder)
        published = {item_id for p in index.publications for item_id in p.items.values()}

        def write(report: TileReport | StagedItem | Callable[[], TileReport | None]) -> tuple[str, dict] | None:
            if isinstance(report, StagedItem):
                return report.tile_id, report.item
            made = report() if callable(report) else report
            return None if made is None else (made.tile_id, self._write_item(made, now, published))

        if threads > 1 and len(reports) > 1:
            # Each item is its own folder of files: tiles' items are written side by side.
            with ThreadPoolExecutor(min(threads, len(reports)), thread_name_prefix="nrt-publish") as pool:
                written = [w for w in pool.map(write, reports) if w is not None]
        else:
            written = [w for w in map(write, reports) if w is not None]
        if not written:
            return None
        items = [item for _, item in written]
        previous = index.latest
        tile_items = dict(previous.items) if previous else {}
        for tile_id, item in written:
            tile_items[tile_id] = item["id"]
        data_time = max(dt.datetime.fromisoformat(i["properties"]["datetime"]) for i in items)
        if previous:
            data_time = max(data_time, previous.datetime)
        version = self._new_version(index.ids, data_time)
        mosaics = self._write_mosaics(version, tile_items)
        publication = Publication(id=version, datetime=data_time, published=now, items=tile_items, mosaics=mosaics)
        self._write_collection(items)
        self._write_root()
        # The pointer moves last: readers see the new version only once every file it names is complete.
        atomic.write_json(self.layout.index_path, index.with_publication(publication).to_dict())
        log.info("published version %s: %d tile report(s), data as of %s", version, len(items), _iso(data_time))
        return publication

    def stage_locked(self, report: TileReport, *, now: dt.datetime | None = None) -> StagedItem:
        """Write a report's item now (COGs, thumbnail, JSON) for a later publication; the caller holds a lock().

        Until a publication names it, the item is invisible to readers; a run that dies first leaves it for the
        next publication of that tile to rewrite.
        """
        published = {item_id for p in read_index(self.layout).publications for item_id in p.items.values()}
        item = self._write_item(report, now or dt.datetime.now(dt.UTC), published)
        return StagedItem(report.tile_id, report.datetime, item)

    def staged_intact(self, staged: StagedItem) -> bool:
        """Whether a staged item's JSON is still on disk as written (a publication names nothing missing)."""
        path = self.layout.item_path(staged.item["id"])
        try:
            return json.loads(path.read_text()) == json.loads(json.dumps(staged.item))
        except (OSError, ValueError):
            return False

    def _new_version(self, existing: set[str], data_time: dt.datetime) -> str:
        """A version id from the data time, made unique if that time was already published."""
        base = _stamp(data_time)
        version, n = base, 1
        while version in existing:
            n += 1
            version = f"{base}-{n}"
        return version

    def _write_item(self, report: TileReport, now: dt.datetime, published: set[str]) -> dict:
        """Write one report's COGs and thumbnail, then its item JSON (immutable once published, never overwritten)."""
        base_id = item_id_for(report.tile_id, report.datetime)
        item_id, n = base_id, 1
        # An item no publication names is what a killed publication left: rewrite it rather than add a twin.
        while item_id in published and self.layout.item_path(item_id).exists():
            n += 1
            item_id = f"{base_id}-{n}"
        folder = self.layout.item_path(item_id).parent
        folder.mkdir(parents=True, exist_ok=True)
        atomic.remove_temps(folder)
        height, width = report.shape
        layers = dict(report.layers)
        series = layers.pop(SERIES_KEY, None)
        # Derived encodings are computed here, from the primary layers, so every monitor gets them alike.
        layers.setdefault(DATE_CONF.asset, gfw_date_conf(layers[STATUS.asset], layers[DATE.asset]))
        for layer in PUBLISHED_LAYERS:
            array = layers.get(layer.asset)
            if array is None:
                raise PublishError(f"tile {report.tile_id}: report lacks layer {layer.asset}")
            write_cog(
                self.layout.asset_path(item_id, layer.asset),
                array.astype(layer.dtype, copy=False),
                crs=report.crs,
                transform=report.transform,
                nodata=layer.nodata,
                description=layer.asset,
                colormap=status_colormap() if layer is STATUS else None,
                tags={"NRT_ALERTS_LAYER": layer.asset, "NRT_ALERTS_TILE": report.tile_id},
            )
        write_cog(
            self.layout.asset_path(item_id, VISUAL),
            visual_rgba(layers[STATUS.asset]),
            crs=report.crs,
            transform=report.transform,
            nodata=None,
            description=VISUAL,
            tags={"NRT_ALERTS_LAYER": VISUAL, "NRT_ALERTS_TILE": report.tile_id},
        )
        write_thumbnail(folder / f"{item_id}_{THUMBNAIL}.png", layers[STATUS.asset])
        item = self._item_dict(item_id, report, now, width, height)
        item["assets"].update(series_assets(folder, item_id, report.tile_id, series, report.crs, report.transform))
        atomic.write_json(self.layout.item_path(item_id), item)
        return item

    def _item_dict(self, item_id: str, report: TileReport, now: dt.datetime, width: int, height: int) -> dict:
        """Build the STAC item of a report with proj, raster and classification metadata."""
        minx, maxy = report.transform @ (0, 0)
        maxx, miny = report.transform @ (width, height)
        footprint = transform_geom(report.crs, "EPSG:4326", mapping(box(minx, miny, maxx, maxy)), precision=7)
        item = pystac.Item(
            id=item_id,
            geometry=footprint,
            bbox=list(shape(footprint).bounds),
            datetime=report.datetime.astimezone(dt.UTC),
            properties={
                "title": f"Alerts for tile {report.tile_id} as of {report.datetime.date().isoformat()}",
                "created": _iso(now),
                "nrt:tile": report.tile_id,
                **report.properties,
            },
            collection=COLLECTION_ID,
        )
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.code = report.crs.to_string() if report.crs.to_epsg() else None
        if proj.code is None:
            proj.wkt2 = report.crs.to_wkt()
        proj.shape = [height, width]
        proj.transform = list(report.transform)[:6]
        proj.bbox = [minx, miny, maxx, maxy]
        RasterExtension.add_to(item)
        resolution = abs(report.transform.a)
        if report.crs.linear_units in ("metre", "meter"):
            item.common_metadata.gsd = resolution
        for layer in PUBLISHED_LAYERS:
            asset = pystac.Asset(
                href=f"./{item_id}_{layer.asset}.tif",
                media_type=COG_MEDIA_TYPE,
                roles=["data", "overview"] if layer is STATUS else ["data"],
                title=layer.title,
                description=layer.description,
            )
            item.add_asset(layer.asset, asset)
            RasterExtension.ext(asset).bands = [_raster_band(layer, resolution)]
            if layer is STATUS:
                asset.extra_fields["classification:classes"] = classification_classes()
        # The renditions for viewers: each asset's key is also its role.
        for key, suffix, media_type, title, description in (
            (VISUAL, "tif", COG_MEDIA_TYPE, VISUAL_TITLE, VISUAL_DESCRIPTION),
            (THUMBNAIL, "png", THUMBNAIL_MEDIA_TYPE, THUMBNAIL_TITLE, THUMBNAIL_DESCRIPTION),
        ):
            href = f"./{item_id}_{key}.{suffix}"
            asset = pystac.Asset(href=href, media_type=media_type, roles=[key], title=title, description=description)
            item.add_asset(key, asset)
        item.stac_extensions.append(CLASSIFICATION_SCHEMA)
        item.clear_links()
        item_dict = item.to_dict(include_self_link=False, transform_hrefs=False)
        item_dict["links"] = tree.item_links(tree.month_of(report.datetime))
        return item_dict

    def _write_mosaics(self, version: str, tile_items: dict[str, str]) -> dict[str, str]:
        """Write one VRT per layer for this version; return layer asset -> path relative to the collection."""
        mosaics = {}
        for layer in PUBLISHED_LAYERS:
            target = self.layout.mosaic_path(version, layer.asset)
            atomic.remove_temps(target.parent)
            sources = [self._mosaic_source(item_id, layer) for _, item_id in sorted(tile_items.items())]
            write_vrt(target, self.grid, layer, sources)
            mosaics[layer.asset] = target.relative_to(self.layout.collection_dir).as_posix()
        return mosaics

    def _mosaic_source(self, item_id: str, layer: LayerSpec) -> MosaicSource:
        """Where an item's layer COG sits in the area grid, read from its item JSON."""
        item = json.loads(self.layout.item_path(item_id).read_text(encoding="utf-8"))
        height, width = item["properties"]["proj:shape"]
        return MosaicSource(
            path=self.layout.asset_path(item_id, layer.asset),
            transform=Affine(*item["properties"]["proj:transform"][:6]),
            width=width,
            height=height,
        )

    def _write_collection(self, new_items: list[dict]) -> None:
        """Link the new items from their month catalogs, then widen the collection's extent and summaries."""
        path = self.layout.collection_path
        collection = json.loads(path.read_text(encoding="utf-8")) if path.exists() else self._new_collection()
        collection, migrated = tree.link_items(self.layout, collection, new_items)
        atomic.write_json(path, widen(collection, [*migrated, *new_items]))

    def _new_collection(self) -> dict:
        """The alerts collection before any item is added."""
        collection = pystac.Collection(
            id=COLLECTION_ID,
            title=self.title,
            description="Near-real-time forest disturbance alerts published by nrt-alerts, one item per tile "
            "and update, linked from one catalog per month of the items' data time. Status codes are listed in "
            "item_assets.status classification:classes.",
            extent=pystac.Extent(
                pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                pystac.TemporalExtent([[None, None]]),
            ),
            license=self.license,
            keywords=["forest", "disturbance", "alerts", "near-real-time"],
        )
        collection.clear_links()
        data = collection.to_dict(include_self_link=False, transform_hrefs=False)
        data["extent"]["spatial"]["bbox"] = [[math.inf, math.inf, -math.inf, -math.inf]]
        data["stac_extensions"] = [CLASSIFICATION_SCHEMA]
        data["item_assets"] = {
            layer.asset: {
                "title": layer.title,
                "description": layer.description,
                "type": COG_MEDIA_TYPE,
                "roles": ["data"],
                "raster:bands": [_raster_band(layer, None).to_dict()],
                **({"classification:classes": classification_classes()} if layer is STATUS else {}),
            }
            for layer in PUBLISHED_LAYERS
        }
        data["item_assets"][VISUAL] = {
            "title": VISUAL_TITLE,
            "description": VISUAL_DESCRIPTION,
            "type": COG_MEDIA_TYPE,
            "roles": ["visual"],
        }
        data["item_assets"][THUMBNAIL] = {
            "title": THUMBNAIL_TITLE,
            "description": THUMBNAIL_DESCRIPTION,
            "type": THUMBNAIL_MEDIA_TYPE,
            "roles": ["thumbnail"],
        }
        data["links"] = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ]
        return data

    def _write_root(self) -> None:
        """Write the root catalog.json (it only ever points at the alerts collection)."""
        if self.layout.catalog_path.exists():
            return
        catalog = pystac.Catalog(
            id="nrt-alerts",
            title="nrt-alerts outputs",
            description="Forest disturbance alerts published by nrt-alerts.",
        )
        catalog.clear_links()
        data = catalog.to_dict(include_self_link=False, transform_hrefs=False)
        data["links"] = [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {
                "rel": "child",
                "href": f"./{COLLECTION_ID}/collection.json",
                "type": "application/json",
                "title": self.title,
            },
        ]
        atomic.write_json(self.layout.catalog_path, data)


def _raster_band(layer: LayerSpec, resolution: float | None) -> RasterBand:
    """raster:bands entry of a layer (NaN nodata is spelled 'nan' as the extension asks)."""
    nodata: float | str = layer.nodata
    if isinstance(nodata, float) and math.isnan(nodata):
        nodata = "nan"
    band = RasterBand.create(
        nodata=nodata, data_type=DataType(layer.dtype), spatial_resolution=resolution, unit=layer.unit
    )
    return band


def visual_rgba(status: np.ndarray) -> np.ndarray:
    """The (4, rows, cols) RGBA picture of a status array in the alert colours."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for code, rgba in status_colormap().items():
        table[code] = rgba
    return np.ascontiguousarray(table[status.astype(np.uint8, copy=False)].transpose(2, 0, 1))
