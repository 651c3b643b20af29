"""The CRSs the service draws in, and their WMS axis order; only codes reach GDAL, never a client string."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pyproj
from rasterio.crs import CRS

from server.wms.errors import WMSException, echo

WEB_MERCATOR = "EPSG:3857"
GEOGRAPHIC = "EPSG:4326"
CRS84 = "CRS:84"
BASE_CODES = (WEB_MERCATOR, GEOGRAPHIC, CRS84)
# A code, or its OGC URI or URN form (http://www.opengis.net/def/crs/EPSG/0/4326, urn:ogc:def:crs:OGC:1.3:CRS84).
CODE = re.compile(
    r"(?:EPSG:|https?://www\.opengis\.net/def/crs/EPSG/[0-9.]+/|urn:ogc:def:crs:EPSG:[0-9.]*:)([0-9]{1,6})"
    r"|(?:CRS:84|OGC:CRS84|https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84|urn:ogc:def:crs:OGC:1\.3:CRS84)",
    re.IGNORECASE,
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MapCRS:
    """A supported CRS: its WMS code, the CRS GDAL draws in (x = easting or longitude) and its axis order."""

    code: str
    crs: CRS
    north_first: bool

    def swaps(self, version: str) -> bool:
        """True when a 1.3.0 BBOX in this CRS lists latitude (northing) first."""
        return version == "1.3.0" and self.north_first

    def to_xy(self, bbox: Box, version: str) -> Box:
        """A client BBOX as (minx, miny, maxx, maxy) with x east."""
        return (bbox[1], bbox[0], bbox[3], bbox[2]) if self.swaps(version) else bbox

    def from_xy(self, bbox: Box, version: str) -> Box:
        """An x-east box in the axis order the version writes for this CRS."""
        return self.to_xy(bbox, version)


def supported_codes(native: str | None) -> tuple[str, ...]:
    """The advertised CRS list: Web Mercator, WGS 84 both ways, and the mosaic's own CRS."""
    return BASE_CODES if native is None or native in BASE_CODES else (*BASE_CODES, native)


@lru_cache(maxsize=16)
def map_crs(code: str) -> MapCRS:
    """The MapCRS of a normalised supported code."""
    if code == CRS84:
        return MapCRS(CRS84, CRS.from_epsg(4326), north_first=False)
    epsg = int(code.split(":")[1])
    first_axis = pyproj.CRS.from_epsg(epsg).axis_info[0].direction
    return MapCRS(code, CRS.from_epsg(epsg), north_first=first_axis in ("north", "south"))


def parse_crs(value: str, version: str, native: str | None) -> MapCRS:
    """A client CRS/SRS: EPSG:<int> or CRS:84 (or their OGC URI/URN), and only the advertised ones."""
    name = "CRS" if version == "1.3.0" else "SRS"
    match = CODE.fullmatch(value.strip())
    code = None
    if match:
        code = CRS84 if match.group(1) is None else f"EPSG:{int(match.group(1))}"
    if code not in supported_codes(native):
        supported = ", ".join(supported_codes(native))
        raise WMSException("InvalidCRS", f"unsupported {name} {echo(value)}; supported: {supported}", locator=name)
    return map_crs(code)
