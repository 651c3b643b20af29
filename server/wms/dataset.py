"""What the service reads from a mosaic besides pixels: its extent and CRS, and its data range (cached per file)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyproj
from rio_tiler.io import Reader

from server.wms.crs import CRS84, GEOGRAPHIC, WEB_MERCATOR, Box

# A mosaic file belongs to one immutable publication version: what is read from it never changes.
CACHE_SIZE = 256
RANGE_SAMPLE = 1024


@dataclass(frozen=True)
class Extent:
    """A mosaic's native CRS code (None without an EPSG code) and its bounds in each advertised CRS (x east)."""

    native: str | None
    bounds: dict[str, Box]

    @property
    def lonlat(self) -> Box:
        """West, south, east, north in degrees."""
        return self.bounds[CRS84]


@lru_cache(maxsize=CACHE_SIZE)
def extent(reader: type[Reader], path: str) -> Extent:
    """The mosaic's CRS and its bounds transformed (edges densified) into every advertised CRS."""
    with reader(path) as src:
        crs = pyproj.CRS.from_wkt(src.crs.to_wkt())
        native_bounds = tuple(float(v) for v in src.bounds)
        epsg = src.crs.to_epsg()
    native = f"EPSG:{epsg}" if epsg else None
    lonlat = _transform(crs, "EPSG:4326", native_bounds)
    bounds = {CRS84: lonlat, GEOGRAPHIC: lonlat, WEB_MERCATOR: _transform(crs, "EPSG:3857", native_bounds)}
    if native:
        bounds[native] = native_bounds
    return Extent(native, bounds)


def _transform(src: pyproj.CRS, dst: str, bounds: tuple[float, ...]) -> Box:
    transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    return tuple(float(v) for v in transformer.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]


@lru_cache(maxsize=CACHE_SIZE)
def data_range(reader: type[Reader], path: str) -> tuple[float, float] | None:
    """Minimum and maximum valid value (read on an overview), None when the layer has no data."""
    with reader(path) as src:
        img = src.preview(max_size=RANGE_SAMPLE)
    values = img.array[0].compressed()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return float(values.min()), float(values.max())
