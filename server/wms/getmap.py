"""GetMap: read the requested box of a published layer with rio-tiler and draw it in the layer's style."""

from __future__ import annotations

import math

import numpy as np
from fastapi import Request, Response
from rio_tiler.io import Reader

from server.wms.caching import cache_control, etag, not_modified
from server.wms.crs import Box
from server.wms.dataset import data_range, extent
from server.wms.maprequest import MapRequest, parse_map_request
from server.wms.params import WMSParams, parse_bgcolor, parse_bool, parse_format
from server.wms.render import colourize, encode
from server.wms.styles import RampStyle

MAP_FORMATS = ("image/png", "image/jpeg")

Pixels = tuple[int, int, int, int]  # col0, row0, col1, row1 of the map, ends excluded


def data_pixels(map_request: MapRequest, data: Box) -> Pixels | None:
    """The map pixels the layer's extent covers, snapped outward to whole pixels; None when it misses the map."""
    minx, miny, maxx, maxy = map_request.bbox
    res_x = (maxx - minx) / map_request.width
    res_y = (maxy - miny) / map_request.height
    col0 = max(0, math.floor((data[0] - minx) / res_x))
    col1 = min(map_request.width, math.ceil((data[2] - minx) / res_x))
    row0 = max(0, math.floor((maxy - data[3]) / res_y))
    row1 = min(map_request.height, math.ceil((maxy - data[1]) / res_y))
    return (col0, row0, col1, row1) if col0 < col1 and row0 < row1 else None


def pixels_box(map_request: MapRequest, pixels: Pixels) -> Box:
    """The map-CRS box of a block of map pixels (the request's own edges where the block reaches them)."""
    minx, miny, maxx, maxy = map_request.bbox
    col0, row0, col1, row1 = pixels
    res_x = (maxx - minx) / map_request.width
    res_y = (maxy - miny) / map_request.height
    return (
        minx if col0 == 0 else minx + col0 * res_x,
        miny if row1 == map_request.height else maxy - row1 * res_y,
        maxx if col1 == map_request.width else minx + col1 * res_x,
        maxy if row0 == 0 else maxy - row0 * res_y,
    )


def draw(reader: type[Reader], map_request: MapRequest, media_type: str, transparent: bool, bgcolor: tuple) -> bytes:
    """The encoded picture of a map request; filtered-out pixels and the world outside the layer are transparent."""
    rgba = np.zeros((map_request.height, map_request.width, 4), dtype=np.uint8)
    # Only the part of the map the layer covers is read: a box far larger than the layer costs no more.
    pixels = data_pixels(map_request, extent(reader, map_request.path).bounds[map_request.crs.code])
    if pixels is not None:
        col0, row0, col1, row1 = pixels
        with reader(map_request.path, alert_filter=map_request.alert_filter) as src:
            img = src.part(
                pixels_box(map_request, pixels),
                dst_crs=map_request.crs.crs,
                bounds_crs=map_request.crs.crs,
                width=col1 - col0,
                height=row1 - row0,
            )
        value_range = data_range(reader, map_request.path) if isinstance(map_request.style, RampStyle) else None
        rgba[row0:row1, col0:col1] = colourize(img, map_request.style, value_range)
    return encode(rgba, media_type, transparent, bgcolor)


def time_headers(map_request: MapRequest) -> dict[str, str]:
    """The publication drawn, and GeoServer's `Warning` when TIME was an instant that is not a publication's."""
    headers = {"X-Publication-Version": map_request.publication.id}
    if map_request.time.nearest:
        headers["Warning"] = f"99 Nearest value used: time={map_request.time.nearest} ISO8601"
    return headers


def get_map(request: Request, params: WMSParams, version: str) -> Response:
    """Answer a GetMap request (304 when the client holds the same picture)."""
    state = request.app.state
    map_request = parse_map_request(params, version, state.registry, state.reader)
    media_type = parse_format(params.require("FORMAT"), MAP_FORMATS)
    transparent = parse_bool(params.get("TRANSPARENT"), "TRANSPARENT", default=False)
    bgcolor = parse_bgcolor(params.get("BGCOLOR"))
    # The ETag is built from the parsed request (publication and filter included), not the query.
    tag = etag("GetMap", *map_request.key(), media_type, transparent, bgcolor)
    headers = {
        "ETag": tag,
        "Cache-Control": cache_control(map_request.immutable, state.settings.latest_max_age),
        **time_headers(map_request),
    }
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    body = draw(state.reader, map_request, media_type, transparent, bgcolor)
    return Response(body, media_type=media_type, headers=headers)
