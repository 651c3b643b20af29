"""Refuse query values that name a file, folder or URL before any route (or GDAL) sees them."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.wms.errors import WMSException, exception_response

# GDAL reads a CRS string that is not a code as a file path, and fetches URLs: only codes and OGC names pass.
CRS_PARAMS = frozenset({"crs", "srs", "coord_crs", "dst_crs", "bbox_crs"})
SAFE_CRS = re.compile(
    r"\[?("
    r"[A-Za-z][A-Za-z0-9_]*:[A-Za-z0-9_.]+"  # EPSG:3857, OGC:CRS84, ESRI:102100
    r"|https?://www\.opengis\.net/def/crs/[A-Za-z0-9_]+/[0-9.]+/[A-Za-z0-9_.]+"  # OGC CRS URI
    r"|urn:ogc:def:crs:[A-Za-z0-9_]+:[0-9.]*:[A-Za-z0-9_.]+"  # OGC URN
    r")\]?"
)
# The WMS exception code of a refused parameter (the others have none).
CODES = {"layers": "LayerNotDefined", "query_layers": "LayerNotDefined", "layer": "LayerNotDefined"}
CODES.update(crs="InvalidCRS", srs="InvalidCRS")
# Absolute paths, GDAL virtual file systems, URLs and parent folders: no parameter value needs them.
PATH_LIKE = re.compile(r"^[/\\~]|://|\.\.")
# Time values and intervals (WMS TIME, STAC datetime) may write an open end as "..": parsed as times, never paths.
TIME_PARAMS = frozenset({"time", "datetime"})
TIME_PART = re.compile(r"\.\.|[0-9][0-9A-Za-z:.+ -]*|current|present|now|latest|", re.IGNORECASE)


def is_time(value: str) -> bool:
    """True for a time, interval or list of them (no path, URL or folder name can pass)."""
    parts = re.split("[/,]", value)
    return not value.startswith(("/", "\\", "~")) and all(TIME_PART.fullmatch(part.strip()) for part in parts)


def refused_value(name: str, value: str) -> str | None:
    """Why a query parameter value is refused (it names a file, folder or URL, or a band we lack), or None."""
    if name == "bidx" and value != "1":
        return "bidx: every layer has one band (bidx=1)"
    # Names in any case: WMS clients send CRS, SRS and TIME in capitals.
    if name.lower() in CRS_PARAMS:
        if SAFE_CRS.fullmatch(value):
            return None
        return f"{name}: only CRS codes (e.g. EPSG:3857) or OGC CRS URIs are accepted, not paths or URLs"
    if name.lower() in TIME_PARAMS and is_time(value):
        return None
    if PATH_LIKE.search(value):
        return f"layers are named; paths and URLs are not accepted (parameter {name!r})"
    return None


def refusal(request: Request) -> JSONResponse | None:
    """The 400 answer for a request with a refused parameter (WMS: an OGC exception report), or None."""
    if "url" in request.query_params:
        # TiTiler's `?url=` names a file or URL to read: never accepted from a client here.
        return JSONResponse(
            {"detail": "layers are named; paths and URLs (the 'url' parameter) are not accepted"},
            status_code=400,
        )
    for name, value in request.query_params.multi_items():
        if reason := refused_value(name, value):
            if request.url.path.rstrip("/") == "/wms":  # WMS clients expect an OGC exception report
                version = request.query_params.get("version") or request.query_params.get("VERSION") or "1.3.0"
                code = CODES.get(name.lower())
                return exception_response(WMSException(code, reason, locator=name), version)
            return JSONResponse({"detail": reason}, status_code=400)
    return None


class RefusePathsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware stream wrapping on the tile path): answers 400 or passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass the request on untouched."""
        if scope["type"] == "http" and scope.get("query_string"):
            response = refusal(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
