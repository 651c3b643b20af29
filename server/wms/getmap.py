"""GetMap: read the requested box of a published layer with rio-tiler and draw it in the layer's style."""

from __future__ import annotations

from fastapi import Request, Response
from rio_tiler.io import Reader

from server.filters import AlertFilter
from server.wms.caching import cache_control, etag, not_modified
from server.wms.dataset import data_range
from server.wms.maprequest import MapRequest, parse_map_request
from server.wms.params import WMSParams, parse_alert_filter, parse_bgcolor, parse_bool, parse_format
from server.wms.render import colourize, encode
from server.wms.styles import RampStyle

MAP_FORMATS = ("image/png", "image/jpeg")


def draw(
    reader: type[Reader],
    map_request: MapRequest,
    media_type: str,
    transparent: bool,
    bgcolor: tuple,
    alert_filter: AlertFilter | None = None,
) -> bytes:
    """The encoded picture of a map request; pixels the alert filter drops are transparent."""
    with reader(map_request.path, alert_filter=alert_filter) as src:
        img = src.part(
            map_request.bbox,
            dst_crs=map_request.crs.crs,
            bounds_crs=map_request.crs.crs,
            width=map_request.width,
            height=map_request.height,
        )
    value_range = data_range(reader, map_request.path) if isinstance(map_request.style, RampStyle) else None
    return encode(colourize(img, map_request.style, value_range), media_type, transparent, bgcolor)


def get_map(request: Request, params: WMSParams, version: str) -> Response:
    """Answer a GetMap request (304 when the client holds the same picture)."""
    state = request.app.state
    map_request = parse_map_request(params, version, state.registry, state.reader)
    media_type = parse_format(params.require("FORMAT"), MAP_FORMATS)
    transparent = parse_bool(params.get("TRANSPARENT"), "TRANSPARENT", default=False)
    bgcolor = parse_bgcolor(params.get("BGCOLOR"))
    alert_filter = parse_alert_filter(params)
    # The ETag is built from the parsed request, not the query: the filter must be part of it.
    filter_key = alert_filter.key() if alert_filter else None
    tag = etag("GetMap", *map_request.key(), media_type, transparent, bgcolor, filter_key)
    headers = {
        "ETag": tag,
        "Cache-Control": cache_control(map_request.immutable, state.settings.latest_max_age),
        "X-Publication-Version": map_request.publication.id,
    }
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    body = draw(state.reader, map_request, media_type, transparent, bgcolor, alert_filter)
    return Response(body, media_type=media_type, headers=headers)
