"""The area's pixel grid and its split into square tiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from scheduler.config import AreaConfig
from scheduler.errors import ConfigError


@dataclass(frozen=True)
class Tile:
    """One square tile of the area grid; its id is stable across runs."""

    id: str
    row: int
    col: int
    width: int
    height: int
    transform: Affine
    crs: CRS

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """minx, miny, maxx, maxy in the tile CRS."""
        minx, maxy = self.transform @ (0, 0)
        maxx, miny = self.transform @ (self.width, self.height)
        return (minx, miny, maxx, maxy)

    @property
    def bounds_4326(self) -> tuple[float, float, float, float]:
        """Bounds in longitude/latitude, for catalog searches."""
        return transform_bounds(self.crs, "EPSG:4326", *self.bounds, densify_pts=21)

    @property
    def geobox(self) -> GeoBox:
        """The odc-geo GeoBox that loaders read into."""
        return GeoBox((self.height, self.width), self.transform, self.crs)


def area_tiles(area: AreaConfig) -> list[Tile]:
    """Split the area into tiles of tile_size pixels; edge tiles are cut to the area."""
    minx, miny, maxx, maxy = area.bounds
    res = area.resolution
    width = math.ceil(round((maxx - minx) / res, 6))
    height = math.ceil(round((maxy - miny) / res, 6))
    crs = CRS.from_user_input(area.crs)
    tiles = []
    for row in range(math.ceil(height / area.tile_size)):
        for col in range(math.ceil(width / area.tile_size)):
            x0, y0 = col * area.tile_size, row * area.tile_size
            transform = Affine(res, 0, minx + x0 * res, 0, -res, maxy - y0 * res)
            tiles.append(
                Tile(
                    id=f"r{row:03d}c{col:03d}",
                    row=row,
                    col=col,
                    width=min(area.tile_size, width - x0),
                    height=min(area.tile_size, height - y0),
                    transform=transform,
                    crs=crs,
                )
            )
    return tiles


def select_tiles(tiles: list[Tile], ids: list[str] | None) -> list[Tile]:
    """Keep the named tiles (all when ids is empty); unknown ids are an error."""
    if not ids:
        return tiles
    known = {t.id: t for t in tiles}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"unknown tile id(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[i] for i in ids]
