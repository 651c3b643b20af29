"""GetFeatureInfo: the decoded alert of the clicked pixel, as /point decodes it, in text, HTML, GML or GeoJSON."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable

import pyproj
from fastapi import Request, Response
from rio_tiler.errors import PointOutsideBounds

from catalog.encoding import date_from_days
from catalog.layers import CONFIRMED, LAYERS_BY_NAME, STATUS
from server.filters import AlertFilter
from server.routers.point import point_alert
from server.wms.caching import cache_control, etag, not_modified
from server.wms.errors import WMSException
from server.wms.getmap import time_headers
from server.wms.gml import GML_FORMATS, Info, as_gml
from server.wms.maprequest import MapRequest, parse_map_request
from server.wms.params import WMSParams, parse_format, parse_layer, parse_pixel
from server.wms.timedim import iso


def pixel_lonlat(map_request: MapRequest, i: int, j: int) -> tuple[float, float]:
    """Longitude and latitude of the centre of map pixel (i, j), counted from the top left."""
    minx, miny, maxx, maxy = map_request.bbox
    x = minx + (i + 0.5) * (maxx - minx) / map_request.width
    y = maxy - (j + 0.5) * (maxy - miny) / map_request.height
    transformer = pyproj.Transformer.from_crs(map_request.crs.crs.to_wkt(), "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(x, y)
    return float(lon), float(lat)  # inf when the pixel has no longitude and latitude


def _raw(request: Request, layer: str, version: str, lon: float, lat: float) -> float:
    resolved = request.app.state.registry.resolve(layer, version)
    with request.app.state.reader(str(resolved.path)) as src:
        return float(src.point(lon, lat).data[0])


def _number(value: float, dtype: str) -> float | int | None:
    """A raw value as JSON wants it: integers for integer layers, None for NaN."""
    if math.isnan(value):
        return None
    return int(value) if dtype.startswith(("uint", "int")) else round(value, 4)


def pixel_info(
    request: Request, map_request: MapRequest, lon: float, lat: float, alert_filter: AlertFilter | None = None
) -> Info | None:
    """The decoded alert at lon/lat in the request's publication (None outside the published area).

    An alert the filter drops reads as no alert, as on /point and in GetMap (where it is transparent).
    """
    version = map_request.publication.id
    spec = LAYERS_BY_NAME[map_request.layer]
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    try:
        # The /point endpoint's own decoding, so both answers always agree.
        alert = point_alert(request, request.app.state.registry, lon, lat, version)
        confirmed = date_from_days(int(_raw(request, CONFIRMED.name, version, lon, lat)))
        value = _raw(request, map_request.layer, version, lon, lat)
        if alert_filter is not None:
            filtered = point_alert(request, request.app.state.registry, lon, lat, version, alert_filter)
            if filtered.status != alert.status:  # dropped: every layer reads as "no alert"
                alert, confirmed = filtered, None
                value = 0.0 if spec is STATUS else float(spec.nodata)
    except PointOutsideBounds:
        return None
    return {
        "layer": map_request.layer,
        "version": alert.version,
        "publication_datetime": iso(map_request.publication.datetime),
        "status": alert.status,
        "status_name": alert.status_name,
        "detection_date": alert.detection_date,
        "confirmation_date": confirmed.isoformat() if confirmed else None,
        "magnitude": alert.magnitude,
        "confidence": alert.confidence,
        "value": _number(value, spec.dtype),
        "longitude": round(lon, 7),
        "latitude": round(lat, 7),
    }


def as_text(info: Info | None, layer: str) -> str | bytes:
    """GeoServer-like plain text: one 'name = value' line per property."""
    if info is None:
        return f"Layer '{layer}': no data at this location\n"
    lines = [f"Layer '{layer}':"] + [f"{name} = {'' if value is None else value}" for name, value in info.items()]
    return "\n".join(lines) + "\n"


def as_html(info: Info | None, layer: str) -> str | bytes:
    """A small HTML table (every value escaped)."""
    if info is None:
        rows = '<tr><td colspan="2">no data at this location</td></tr>'
    else:
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape('' if value is None else str(value))}</td></tr>"
            for name, value in info.items()
        )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(layer)}</title></head>'
        f"<body><table><caption>{html.escape(layer)}</caption>{rows}</table></body></html>"
    )


def as_geojson(info: Info | None, layer: str) -> str | bytes:
    """A GeoJSON FeatureCollection: the pixel as a point feature, or no feature outside the area."""
    features = []
    if info is not None:
        features.append(
            {
                "type": "Feature",
                "id": f"{info['layer']}.{info['version']}",
                "geometry": {"type": "Point", "coordinates": [info["longitude"], info["latitude"]]},
                "properties": info,
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features})


WRITERS: dict[str, Callable[[Info | None, str], str | bytes]] = {
    "text/plain": as_text,
    "text/html": as_html,
    "application/json": as_geojson,
    **dict.fromkeys(GML_FORMATS, as_gml),
}
INFO_FORMATS = tuple(WRITERS)


def get_feature_info(request: Request, params: WMSParams, version: str) -> Response:
    """Answer GetFeatureInfo for the pixel I/J (1.3.0) or X/Y (1.1.1) of the described map."""
    state = request.app.state
    map_request = parse_map_request(params, version, state.registry, state.reader)
    names = [spec.name for spec in state.registry.layers]
    query_layer = parse_layer(params.require("QUERY_LAYERS"), names, locator="QUERY_LAYERS")
    if query_layer != map_request.layer:
        raise WMSException("LayerNotDefined", "QUERY_LAYERS must name a layer of LAYERS", locator="QUERY_LAYERS")
    info_format = parse_format(params.get("INFO_FORMAT") or "text/plain", INFO_FORMATS, locator="INFO_FORMAT")
    i, j = parse_pixel(params, version, map_request.width, map_request.height)
    tag = etag("GetFeatureInfo", *map_request.key(), info_format, i, j)
    headers = {
        "ETag": tag,
        "Cache-Control": cache_control(map_request.immutable, state.settings.latest_max_age),
        **time_headers(map_request),
    }
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    info = pixel_info(request, map_request, *pixel_lonlat(map_request, i, j), map_request.alert_filter)
    return Response(WRITERS[info_format](info, map_request.layer), media_type=info_format, headers=headers)
