"""Server exceptions and their HTTP status codes (TiTiler's pattern: a short hierarchy and one map)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from rasterio.errors import RasterioIOError
from rio_tiler.errors import InvalidBandName, InvalidExpression, PointOutsideBounds, TileOutsideBounds
from starlette import status

from catalog.errors import CatalogError, LayerNotFound
from server.rasterio_boundary import GDAL_ERRORS

log = logging.getLogger(__name__)


class ServerError(Exception):
    """Base class of errors the server raises itself."""


class ForbiddenPath(ServerError):
    """A dataset path outside the published catalog reached the reader."""


class BadRequest(ServerError):
    """A parameter is malformed."""


STATUS_CODES: dict[type[Exception], int] = {
    BadRequest: status.HTTP_400_BAD_REQUEST,
    ForbiddenPath: status.HTTP_403_FORBIDDEN,
    LayerNotFound: status.HTTP_404_NOT_FOUND,
    TileOutsideBounds: status.HTTP_404_NOT_FOUND,
    PointOutsideBounds: status.HTTP_404_NOT_FOUND,
    InvalidBandName: status.HTTP_400_BAD_REQUEST,
    InvalidExpression: status.HTTP_400_BAD_REQUEST,
    CatalogError: status.HTTP_503_SERVICE_UNAVAILABLE,
    RasterioIOError: status.HTTP_503_SERVICE_UNAVAILABLE,
}


# PROJ cannot transform some points into a layer's CRS at all (e.g. 66 degrees west into UTM 33N): not found there.
OUTSIDE_DOMAIN = "outside of projection domain"


async def gdal_error(request: Request, exc: Exception) -> JSONResponse:
    """A GDAL/PROJ error escaping a reader: a point its CRS cannot represent is 404, anything else a logged 500."""
    if OUTSIDE_DOMAIN in str(exc).lower():
        return JSONResponse({"detail": "Point is outside dataset bounds (outside its CRS's domain)"}, status_code=404)
    log.error("%s %s: GDAL error: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the layer could not be read"}, status_code=500)


# A body that fails validation is not echoed back (a 20 MB body made a 40 MB answer): where and why, that is all.
MAX_VALIDATION_ERRORS = 10


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field and why, without the submitted values."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors[:MAX_VALIDATION_ERRORS]}, status_code=422)


def add_exception_handlers(app: FastAPI) -> None:
    """Answer every mapped exception with its status and a one-line reason, never a traceback."""
    for gdal_type in GDAL_ERRORS:
        app.add_exception_handler(gdal_type, gdal_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for exc_type, code in STATUS_CODES.items():

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            if code >= 500:
                log.error("%s %s: %s", request.method, request.url.path, exc)
            return JSONResponse({"detail": str(exc)}, status_code=code)

        app.add_exception_handler(exc_type, handler)
