"""The pixel grid of the demo archive and its footprint in EPSG:4326."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from scheduler.demo.spec import DemoSpec

# Segments per footprint edge when reprojecting: enough to follow the (slightly curved) UTM edges in lon/lat.
FOOTPRINT_DENSIFY = 4
# 1e-7 degrees is about a centimetre: finer digits are noise in the JSON.
LONLAT_DECIMALS = 7


@dataclass(frozen=True)
class Grid:
    """A north-up grid: shape, resolution, upper-left corner and CRS."""

    width: int
    height: int
    resolution: float
    origin_x: float
    origin_y: float
    epsg: int

    @classmethod
    def from_spec(cls, spec: DemoSpec) -> Grid:
        """Grid described by a demo spec."""
        return cls(spec.width, spec.height, spec.resolution, spec.origin_x, spec.origin_y, spec.epsg)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.height, self.width)

    @property
    def transform(self) -> Affine:
        """Affine transform from pixel to native coordinates."""
        return Affine(self.resolution, 0.0, self.origin_x, 0.0, -self.resolution, self.origin_y)

    @property
    def crs(self) -> CRS:
        """Native CRS."""
        return CRS.from_epsg(self.epsg)

    @property
    def crs_code(self) -> str:
        """Authority code as written to proj:code."""
        return f"EPSG:{self.epsg}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the native CRS."""
        return (
            self.origin_x,
            self.origin_y - self.height * self.resolution,
            self.origin_x + self.width * self.resolution,
            self.origin_y,
        )

    def to_wgs84(self) -> Transformer:
        """Return a transformer from the native CRS to lon/lat."""
        return Transformer.from_crs(self.crs, CRS.from_epsg(4326), always_xy=True)

    def footprint_wgs84(self) -> shapely.Polygon:
        """Grid outline in EPSG:4326, densified along the edges."""
        minx, miny, maxx, maxy = self.bounds
        outline = shapely.box(minx, miny, maxx, maxy, ccw=True)
        step = max(self.width, self.height) * self.resolution / FOOTPRINT_DENSIFY
        dense = shapely.segmentize(outline, step)
        return reproject_polygon(dense, self.to_wgs84())


def reproject_polygon(polygon: shapely.Polygon, transformer: Transformer) -> shapely.Polygon:
    """Reproject a polygon vertex by vertex, shell counter-clockwise and holes clockwise (RFC 7946)."""
    shell = _reproject_ring(polygon.exterior, transformer)
    holes = [_reproject_ring(ring, transformer) for ring in polygon.interiors]
    return shapely.geometry.polygon.orient(shapely.Polygon(shell, holes), 1.0)


def reproject_geometry(
    geometry: shapely.Polygon | shapely.MultiPolygon, transformer: Transformer
) -> shapely.Polygon | shapely.MultiPolygon:
    """Reproject a polygon or multipolygon like reproject_polygon does."""
    if isinstance(geometry, shapely.MultiPolygon):
        return shapely.MultiPolygon([reproject_polygon(part, transformer) for part in geometry.geoms])
    return reproject_polygon(geometry, transformer)


def _reproject_ring(ring: shapely.LinearRing, transformer: Transformer) -> np.ndarray:
    """Lon/lat vertices of one ring, rounded."""
    xy = np.asarray(ring.coords)
    lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([np.round(lon, LONLAT_DECIMALS), np.round(lat, LONLAT_DECIMALS)])
