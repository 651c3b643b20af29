"""Writing single-band Cloud-Optimized GeoTIFFs on the demo grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from scheduler.demo.grid import Grid

BLOCKSIZE = 256


def write_cog(
    path: Path, data: np.ndarray, grid: Grid, *, nodata: float | None = None, tags: dict[str, str] | None = None
) -> None:
    """Write a 2-D array as a deflate-compressed COG, with optional dataset metadata tags."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": data.dtype.name,
        "crs": grid.crs_code,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "DEFLATE",
        # Horizontal differencing shrinks smooth integer imagery by a third or so.
        "predictor": 2,
        "blocksize": BLOCKSIZE,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
