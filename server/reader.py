"""A rio-tiler Reader that opens only files of the published catalog, knows the alert colours and filters alerts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attr
import numpy as np
from morecantile import Tile, TileMatrixSet
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import Reader
from rio_tiler.models import ImageData, PointData

from catalog.encoding import status_colormap, visible_colours
from catalog.errors import LayerNotFound
from catalog.layers import CONFIDENCE, DATE, STATUS
from server.errors import ForbiddenPath
from server.filters import AlertFilter

# Sibling layers are read on the same grid as the requested one: nearest keeps codes and dates exact.
SIBLING_READ = {"indexes": 1, "resampling_method": "nearest", "reproject_method": "nearest"}
STATUS_COLOURS = visible_colours(status_colormap())
# Geometry options of `part` that define the output grid, forwarded to sibling reads.
GRID_OPTIONS = ("padding",)
# Tiles go this many zooms past the native resolution: a pixel is then 4 screen pixels wide, easy to click.
OVERZOOM = 2
# Tiles start at the zoom where the whole area has shrunk to at most this many pixels, so a map zoomed out to see
# the area among its surroundings still shows it (below, it would be a dot).
AREA_MIN_PIXELS = 32


def area_minzoom(tms: TileMatrixSet, crs: CRS, bounds: tuple[float, float, float, float], native: int) -> int:
    """The highest zoom (at most `native`) at which the area spans at most AREA_MIN_PIXELS pixels."""
    try:
        left, bottom, right, top = transform_bounds(crs, tms.rasterio_crs, *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - an area its TMS cannot represent: every zoom from the first
        return tms.minzoom
    extent = max(right - left, top - bottom)
    for zoom in range(native, tms.minzoom - 1, -1):
        if extent / tms.matrix(zoom).cellSize <= AREA_MIN_PIXELS:
            return zoom
    return tms.minzoom


def guarded_reader(root: Path, max_part_size: int = 1024) -> type[Reader]:
    """Build a Reader class that refuses any input outside `root` (also what WMS LAYERS would reach).

    A part read without a size (TiTiler's feature statistics) is at native resolution up to `max_part_size`
    pixels a side, and scaled down to that beyond: a world-sized polygon must not read a world of pixels.
    """
    allowed = root.resolve()

    @attr.s
    class LayerReader(Reader):
        """Reader for published layers only; with `alert_filter`, pixels failing it are masked."""

        alert_filter: AlertFilter | None = attr.ib(default=None)

        def __attrs_post_init__(self) -> None:
            if self.dataset is None:
                text = str(self.input)
                # GDAL treats these prefixes as network or virtual file systems: never from a client.
                if "://" in text or text.startswith("/vsi") or ".." in Path(text).parts:
                    raise ForbiddenPath("layers are named; paths and URLs are not accepted")
                if not Path(text).resolve().is_relative_to(allowed):
                    raise ForbiddenPath("layers are named; paths and URLs are not accepted")
            given = self.colormap is not None
            super().__attrs_post_init__()
            # The status layer renders with the RGBA alert colours (its GeoTIFF palette has no alpha). Set through
            # the public `colormap` attribute after rio-tiler read the file's own, unless the caller gave one.
            if not given and self.dataset.descriptions and self.dataset.descriptions[0] == STATUS.asset:
                self.colormap = STATUS_COLOURS

        @property
        def minzoom(self) -> int:
            """The zoom at which the whole area has shrunk to a small patch (tiles answer at every zoom)."""
            return area_minzoom(self.tms, self.crs, self.bounds, super().maxzoom)

        @property
        def maxzoom(self) -> int:
            """The zoom of the native resolution + OVERZOOM."""
            return min(super().maxzoom + OVERZOOM, self.tms.maxzoom)

        def tile(
            self, tile_x: int, tile_y: int, tile_z: int, tilesize: int | None = None, *args: Any, **kwargs: Any
        ) -> ImageData:
            """A tile; outside the layer's bounds an empty (fully masked) one, so maps get a transparent image."""
            if self.tile_exists(tile_x, tile_y, tile_z):
                return super().tile(tile_x, tile_y, tile_z, tilesize, *args, **kwargs)
            matrix = self.tms.matrix(tile_z)
            buffer = int(2 * (kwargs.get("buffer") or 0))
            shape = (1, (tilesize or matrix.tileHeight) + buffer, (tilesize or matrix.tileWidth) + buffer)
            return ImageData(
                np.ma.masked_all(shape, dtype=self.dataset.dtypes[0]),
                bounds=self.tms.xy_bounds(Tile(x=tile_x, y=tile_y, z=tile_z)),
                crs=self.tms.rasterio_crs,
            )

        def part(self, bbox: Any, *args: Any, **kwargs: Any) -> ImageData:
            """Read part of the layer (bounded in size), masking the pixels the alert filter drops."""
            # rio-tiler's part takes these positionally after bbox; name them so siblings get the same grid.
            names = ("dst_crs", "bounds_crs", "indexes", "expression", "max_size", "height", "width", "buffer")
            options = {**dict(zip(names, args, strict=False)), **kwargs}
            if not any(options.get(k) for k in ("max_size", "height", "width")):
                if self._native_size(bbox, options.get("bounds_crs") or WGS84_CRS) > max_part_size:
                    options["max_size"] = max_part_size
            img = super().part(bbox, **options)
            if self.alert_filter is None:
                return img
            grid = {k: options.get(k) for k in ("dst_crs", "max_size", "height", "width", "buffer")}
            grid["bounds_crs"] = options.get("bounds_crs", WGS84_CRS)
            grid.update({k: options[k] for k in GRID_OPTIONS if options.get(k) is not None})
            keep = self._keep(lambda src: src.part(bbox, **grid, **SIBLING_READ).array[0])
            return _masked_image(img, keep)

        def _native_size(self, bbox: Any, bounds_crs: CRS) -> float:
            """The longer side, in the layer's pixels, of a bbox (infinite when it cannot be placed)."""
            try:
                left, bottom, right, top = transform_bounds(bounds_crs, self.crs, *bbox, densify_pts=21)
            except Exception:  # noqa: BLE001 - PROJ refuses some bboxes: read those at the bounded size
                return float("inf")
            return max((right - left) / abs(self.transform.a), (top - bottom) / abs(self.transform.e))

        def read(self, *args: Any, **kwargs: Any) -> ImageData:
            """Read the whole layer (previews, statistics), masking the pixels the alert filter drops."""
            img = super().read(*args, **kwargs)
            if self.alert_filter is None:
                return img
            grid = {k: kwargs.get(k) for k in ("dst_crs", "max_size", "height", "width")}
            keep = self._keep(lambda src: src.read(**grid, **SIBLING_READ).array[0])
            return _masked_image(img, keep)

        def point(self, lon: float, lat: float, coord_crs: Any = WGS84_CRS, **kwargs: Any) -> PointData:
            """A pixel value, masked when the alert filter drops it."""
            pt = super().point(lon, lat, coord_crs=coord_crs, **kwargs)
            if self.alert_filter is None:
                return pt
            keep = self._keep(lambda src: src.point(lon, lat, coord_crs=coord_crs, indexes=1).array[:1])
            pt.array.mask = np.ma.getmaskarray(pt.array) | ~keep
            return pt

        def _keep(self, read: Callable[[Reader], np.ma.MaskedArray]) -> np.ndarray:
            """Where the filter keeps pixels, reading the sibling layers it needs through `read`."""
            assert self.alert_filter is not None
            layers = {}
            for spec, needed in (
                (STATUS, self.alert_filter.needs_status),
                (DATE, self.alert_filter.needs_date),
                (CONFIDENCE, self.alert_filter.needs_confidence),
            ):
                if needed:
                    layers[spec.asset] = read_sibling(type(self), Path(self.input), spec.asset, read)
            return self.alert_filter.keep(
                layers.get(STATUS.asset), layers.get(DATE.asset), layers.get(CONFIDENCE.asset)
            )

    return LayerReader


def read_sibling(
    reader: type[Reader], path: Path, asset: str, read: Callable[[Reader], np.ma.MaskedArray]
) -> np.ma.MaskedArray:
    """Read another layer of the same publication: the file of that asset beside the resolved mosaic or COG."""
    # The path was resolved on the server from a layer name: a mosaic `<version>/<asset>.vrt` or an item's COG
    # `<item>/<item>_<asset>.tif` (layer names may hold "_", so the item folder's name gives the prefix).
    prefix = f"{path.parent.name}_" if path.stem.startswith(f"{path.parent.name}_") else ""
    sibling = path.with_name(f"{prefix}{asset}{path.suffix}")
    if not sibling.is_file():
        raise LayerNotFound(f"this publication has no {asset!r} layer to filter on")
    with reader(str(sibling)) as src:
        return read(src)


def _masked_image(img: ImageData, keep: np.ndarray) -> ImageData:
    """The image with the pixels outside `keep` masked in every band."""
    if keep.shape != img.array.shape[1:]:
        raise RuntimeError(f"filter grid {keep.shape} differs from the image grid {img.array.shape[1:]}")
    img.array.mask = np.ma.getmaskarray(img.array) | ~keep[np.newaxis]
    return img
