"""A rio-tiler Reader that opens only files of the published catalog, knows the alert colours and filters alerts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attr
import numpy as np
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


def guarded_reader(root: Path) -> type[Reader]:
    """Build a Reader class that refuses any input outside `root` (also what WMS LAYERS would reach)."""
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
            super().__attrs_post_init__()

        def _get_colormap(self) -> None:
            """The status layer renders with the RGBA alert colours (its GeoTIFF palette has no alpha)."""
            if self.dataset.descriptions and self.dataset.descriptions[0] == STATUS.asset:
                self.colormap = STATUS_COLOURS
            else:
                super()._get_colormap()

        def part(self, bbox: Any, *args: Any, **kwargs: Any) -> ImageData:
            """Read part of the layer, masking the pixels the alert filter drops."""
            img = super().part(bbox, *args, **kwargs)
            if self.alert_filter is None:
                return img
            # rio-tiler's part takes these positionally after bbox; name them so siblings get the same grid.
            names = ("dst_crs", "bounds_crs", "indexes", "expression", "max_size", "height", "width", "buffer")
            options = {**dict(zip(names, args, strict=False)), **kwargs}
            grid = {k: options.get(k) for k in ("dst_crs", "max_size", "height", "width", "buffer")}
            grid["bounds_crs"] = options.get("bounds_crs", WGS84_CRS)
            grid.update({k: options[k] for k in GRID_OPTIONS if options.get(k) is not None})
            keep = self._keep(lambda src: src.part(bbox, **grid, **SIBLING_READ).array[0])
            return _masked_image(img, keep)

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
