"""Every use of rasterio's private API: the base class of the GDAL/PROJ errors it raises.

rasterio raises GDAL's errors as subclasses of `rasterio._err.CPLE_BaseError`; `rasterio.errors` exports no common
base for them (its RasterioIOError covers failed opens only), so there is no public equivalent to fall back to.
Should a rasterio release move the class, GDAL_ERRORS is empty and such errors get the server's generic 500 answer
instead of server/errors.py's (404 for a point outside its CRS's domain).
"""

from __future__ import annotations

try:
    from rasterio._err import CPLE_BaseError
except ImportError:  # a rasterio that moved it: no handler rather than no server
    GDAL_ERRORS: tuple[type[Exception], ...] = ()
else:
    GDAL_ERRORS = (CPLE_BaseError,)
