"""Write the VRT that mosaics every tile's latest COG of one layer over the whole area grid."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from affine import Affine
from rasterio.crs import CRS

from catalog import atomic
from catalog.encoding import status_colormap
from catalog.layers import STATUS, LayerSpec

GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}


@dataclass(frozen=True)
class AreaGrid:
    """The full area grid a mosaic covers, so every version has the same extent and pixel alignment."""

    crs: CRS
    transform: Affine
    width: int
    height: int


@dataclass(frozen=True)
class MosaicSource:
    """One tile COG and where it sits in the area grid."""

    path: Path
    transform: Affine
    width: int
    height: int


def write_vrt(target: Path, grid: AreaGrid, layer: LayerSpec, sources: list[MosaicSource]) -> None:
    """Write a mosaic VRT atomically.

    Hand-written rather than rio-vrt: that builds the extent from the files present (so the mosaic would
    shrink while a tile is missing) and drops the colour table, which QGIS uses when it opens the VRT.
    """
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = grid.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in grid.transform.to_gdal())
    band = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[layer.dtype], band="1")
    ET.SubElement(band, "Description").text = layer.asset
    nodata = layer.nodata
    ET.SubElement(band, "NoDataValue").text = "nan" if isinstance(nodata, float) and math.isnan(nodata) else str(nodata)
    if layer is STATUS:
        ET.SubElement(band, "ColorInterp").text = "Palette"
        table = ET.SubElement(band, "ColorTable")
        colours = status_colormap()
        # Unlike a GeoTIFF palette, a VRT colour table keeps alpha: QGIS and GDAL's RGBA expansion then show the
        # alerts over transparency, not "none" as opaque black.
        for value in range(256):
            r, g, b, a = colours.get(value, (0, 0, 0, 0))
            ET.SubElement(table, "Entry", c1=str(r), c2=str(g), c3=str(b), c4=str(a))
    inverse = ~grid.transform
    for source in sources:
        col, row = (round(v) for v in inverse @ (source.transform.c, source.transform.f))
        simple = ET.SubElement(band, "SimpleSource")
        rel = os.path.relpath(source.path, target.parent)
        ET.SubElement(simple, "SourceFilename", relativeToVRT="1").text = rel
        ET.SubElement(simple, "SourceBand").text = "1"
        size = {"xSize": str(source.width), "ySize": str(source.height)}
        ET.SubElement(simple, "SrcRect", xOff="0", yOff="0", **size)
        ET.SubElement(simple, "DstRect", xOff=str(col), yOff=str(row), **size)
    ET.indent(root)
    atomic.write_bytes(target, ET.tostring(root, encoding="utf-8") + b"\n")
