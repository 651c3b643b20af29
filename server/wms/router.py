"""The /wms endpoint: dispatch on REQUEST, and turn every failure into a ServiceExceptionReport."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from rasterio.errors import RasterioIOError

from catalog.errors import CatalogError, LayerNotFound
from server.errors import ForbiddenPath
from server.wms.capabilities import get_capabilities
from server.wms.errors import WMSException
from server.wms.featureinfo import get_feature_info
from server.wms.getmap import get_map
from server.wms.inimage import error_response
from server.wms.legend import get_legend_graphic
from server.wms.params import WMSParams, check_service, negotiate_version, parse_operation

log = logging.getLogger(__name__)

router = APIRouter(tags=["WMS"])

DESCRIPTION = (
    "OGC WMS 1.3.0 and 1.1.1: GetCapabilities, GetMap, GetFeatureInfo and GetLegendGraphic over the named "
    "layers (parameter names in any case). TIME as in GeoServer's WMS-T: an instant picks the nearest publication, "
    "a range (or a year, month or day) the alerts first detected in it. Errors are XML ServiceExceptionReports "
    "with HTTP 400 (GetMap: a picture with EXCEPTIONS=INIMAGE or BLANK). Without any parameter, the 1.3.0 "
    "capabilities."
)
# Documented for OpenAPI readers (and so swept by the security tests); the handler reads them in any case.
PARAMETERS = (
    ("SERVICE", "WMS"),
    ("REQUEST", "GetCapabilities, GetMap, GetFeatureInfo or GetLegendGraphic"),
    ("VERSION", "1.3.0 (default) or 1.1.1"),
    ("LAYERS", "One layer name (GetMap, GetFeatureInfo)"),
    ("STYLES", "Empty or a style of the layer"),
    ("CRS", "1.3.0: EPSG:3857, EPSG:4326 (latitude first), CRS:84 or the native EPSG code"),
    ("SRS", "1.1.1: as CRS, always x/y"),
    ("BBOX", "minx,miny,maxx,maxy in the CRS's axis order"),
    ("WIDTH", "Pixels, 1 to 4096"),
    ("HEIGHT", "Pixels, 1 to 4096"),
    ("FORMAT", "image/png or image/jpeg"),
    ("TRANSPARENT", "TRUE or FALSE (default)"),
    ("BGCOLOR", "0xRRGGBB, when not transparent"),
    (
        "TIME",
        "An instant (the nearest publication), start/end ('..' open), 2024, 2024-03 or 2024-03-11 (the alerts "
        "first detected then), a comma list, or current (default)",
    ),
    ("QUERY_LAYERS", "GetFeatureInfo: the layer to query"),
    ("INFO_FORMAT", "GetFeatureInfo: text/plain, text/html, application/vnd.ogc.gml or application/json"),
    ("EXCEPTIONS", "XML (default), INIMAGE or BLANK (1.1.1: application/vnd.ogc.se_xml, _inimage, _blank)"),
    ("I", "GetFeatureInfo 1.3.0: pixel column"),
    ("J", "GetFeatureInfo 1.3.0: pixel row"),
    ("X", "GetFeatureInfo 1.1.1: pixel column"),
    ("Y", "GetFeatureInfo 1.1.1: pixel row"),
    ("LAYER", "GetLegendGraphic: the layer"),
    ("STYLE", "GetLegendGraphic: the style"),
)
OPENAPI = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in PARAMETERS
    ]
}


def dispatch(request: Request, params: WMSParams, version: str) -> Response:
    """Run the requested operation."""
    check_service(params)
    operation = parse_operation(params)
    if operation == "GetCapabilities":
        return get_capabilities(request, version)
    if operation == "GetMap":
        return get_map(request, params, version)
    if operation == "GetFeatureInfo":
        return get_feature_info(request, params, version)
    return get_legend_graphic(request, params)


@router.get(
    "/wms",
    name="wms",
    operation_id="getWMS",
    summary="OGC Web Map Service",
    description=DESCRIPTION,
    response_class=Response,
    openapi_extra=OPENAPI,
)
def wms(request: Request) -> Response:
    """Answer a WMS request; clients name layers, never files."""
    params = WMSParams(request.query_params.multi_items())
    version = negotiate_version(params)
    try:
        if not request.query_params:  # a bare /wms (a browser, a probe): the service's own description
            return get_capabilities(request, version)
        return dispatch(request, params, version)
    except WMSException as exc:
        error = exc
    except LayerNotFound as exc:
        # Layer names were checked already: this is a catalog with nothing (or not this layer) published yet.
        error = WMSException("LayerNotDefined", str(exc), status=404)
    except (CatalogError, RasterioIOError) as exc:
        log.error("WMS %s: %s", request.url.query, exc)
        error = WMSException(None, "the published catalog cannot be read now", status=503)
    except ForbiddenPath as exc:
        error = WMSException(None, str(exc), status=403)
    except Exception:
        log.exception("WMS request failed: %s", request.url.query)
        error = WMSException(None, "internal error", status=500)
    return error_response(error, params, version)
