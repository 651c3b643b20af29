"""Write one raster layer as a validated Cloud-Optimized GeoTIFF, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from catalog.atomic import atomic_path
from catalog.errors import PublishError


def write_cog(
    target: Path,
    array: np.ndarray,
    *,
    crs: CRS,
    transform: Affine,
    nodata: float | int | None,
    description: str,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    tags: dict[str, str] | None = None,
    overview_resampling: str = "nearest",
) -> None:
    """Write a 2-D array or a (4, rows, cols) RGBA picture as a validated deflate COG with internal overviews."""
    rgba = array.ndim == 3
    height, width = array.shape[-2:]
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 4 if rgba else 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        **({"photometric": "RGB"} if rgba else {}),
    }
    dst_profile = cog_profiles.get("deflate")
    # Small tiles get small blocks, so a tile of 128 px is still internally tiled and gets overviews.
    block = 256 if min(width, height) >= 512 else 128
    dst_profile.update(blockxsize=block, blockysize=block, predictor=2 if array.dtype.kind in "iu" else 3)
    with MemoryFile() as mem:
        with mem.open(**profile) as src:
            if colormap:
                # Before the pixels: libtiff cannot change the photometric tag once data is written.
                # GeoTIFF palettes carry RGB only; alpha is applied when tiles are rendered.
                src.write_colormap(1, {k: v[:3] + (255,) for k, v in colormap.items()})
            if rgba:
                src.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
                src.write(array)
            else:
                src.write(array, 1)
            src.set_band_description(1, description)
            if tags:
                src.update_tags(**tags)
        with mem.open() as src, atomic_path(target) as tmp:
            cog_translate(
                src,
                str(tmp),
                dst_profile,
                nodata=nodata,
                overview_resampling=overview_resampling,
                overview_level=_overview_levels(width, height, block),
                in_memory=True,
                quiet=True,
            )
            check_cog(tmp, target.name)


def check_cog(path: Path, name: str) -> None:
    """Raise PublishError unless the file at `path` (to be published as `name`) passes cog_validate."""
    valid, errors, _warnings = cog_validate(str(path), quiet=True)
    if not valid:
        raise PublishError(f"{name} is not a valid COG: {'; '.join(errors)}")


def _overview_levels(width: int, height: int, block: int) -> int:
    """Overviews until the smallest level fits in one block (at least one level)."""
    levels, size = 0, max(width, height)
    while size > block:
        size = (size + 1) // 2
        levels += 1
    return max(levels, 1)


def read_layer(path: Path) -> np.ndarray:
    """Read band 1 of a published layer (tests and evaluation)."""
    with rasterio.open(path) as src:
        return src.read(1)
