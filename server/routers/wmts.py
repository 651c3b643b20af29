"""OGC WMTS 1.0.0 (RESTful) capabilities of the named layers, pointing at the XYZ tile route."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import morecantile
from fastapi import APIRouter, Request
from fastapi.responses import Response
from rio_tiler.constants import WGS84_CRS

from catalog.layers import STATUS, LayerSpec
from server.deps import RegistryDep

router = APIRouter(tags=["WMTS"])

CAPABILITIES_PATH = "/wmts/1.0.0/WMTSCapabilities.xml"
TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
TIME = "Time"
LATEST = "latest"
FORMAT = "image/png"

WMTS_NS = "http://www.opengis.net/wmts/1.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", WMTS_NS)
ET.register_namespace("ows", OWS_NS)
ET.register_namespace("xlink", XLINK_NS)


def _w(tag: str) -> str:
    """A WMTS element name."""
    return f"{{{WMTS_NS}}}{tag}"


def _o(tag: str) -> str:
    """An OWS element name."""
    return f"{{{OWS_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    """Append a child element with optional text."""
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _operations(root: ET.Element, capabilities_url: str, tiles_url: str) -> None:
    """OperationsMetadata: GetCapabilities and GetTile, both RESTful only."""
    metadata = _sub(root, _o("OperationsMetadata"))
    for name, href in (("GetCapabilities", capabilities_url), ("GetTile", tiles_url)):
        operation = _sub(metadata, _o("Operation"), name=name)
        get = _sub(_sub(_sub(operation, _o("DCP")), _o("HTTP")), _o("Get"), **{f"{{{XLINK_NS}}}href": href})
        allowed = _sub(_sub(get, _o("Constraint"), name="GetEncoding"), _o("AllowedValues"))
        _sub(allowed, _o("Value"), "RESTful")


def _limits(parent: ET.Element, bounds: tuple[float, float, float, float]) -> None:
    """TileMatrixSetLimits: the tiles covering the published area at every zoom."""
    west, south, east, north = bounds
    limits = _sub(parent, _w("TileMatrixSetLimits"))
    for matrix in TMS.tileMatrices:
        zoom = int(matrix.id)
        top_left, bottom_right = TMS.tile(west, north, zoom), TMS.tile(east, south, zoom)
        entry = _sub(limits, _w("TileMatrixLimits"))
        _sub(entry, _w("TileMatrix"), matrix.id)
        _sub(entry, _w("MinTileRow"), str(top_left.y))
        _sub(entry, _w("MaxTileRow"), str(bottom_right.y))
        _sub(entry, _w("MinTileCol"), str(top_left.x))
        _sub(entry, _w("MaxTileCol"), str(bottom_right.x))


def _time_dimension(parent: ET.Element, versions: list[str]) -> None:
    """The publication version as dimension Time: `latest` by default, or any publication id."""
    # Publication ids are the data time in ISO 8601 basic format (20240311T101200), and the tile route already
    # takes them as ?version=, so the ResourceURL carries {Time} there and no other route is needed.
    dimension = _sub(parent, _w("Dimension"))
    _sub(dimension, _o("Title"), "Publication")
    _sub(
        dimension,
        _o("Abstract"),
        "Publication: 'latest' or a publication id, its UTC data time in ISO 8601 basic format "
        "(20240311T101200 is the WMS time 2024-03-11T10:12:00Z; the WMS TIME takes both forms, and 'latest').",
    )
    _sub(dimension, _o("Identifier"), TIME)
    _sub(dimension, _w("Default"), LATEST)
    for value in [LATEST, *reversed(versions)]:
        _sub(dimension, _w("Value"), value)


def _layer(
    contents: ET.Element, base: str, spec: LayerSpec, bounds: tuple[float, float, float, float], versions: list[str]
) -> None:
    """One Layer: a named layer's tiles in WebMercatorQuad, by publication version."""
    layer = _sub(contents, _w("Layer"))
    _sub(layer, _o("Title"), spec.title)
    _sub(layer, _o("Abstract"), spec.description)
    bbox = _sub(layer, _o("WGS84BoundingBox"), crs="urn:ogc:def:crs:OGC:2:84")
    _sub(bbox, _o("LowerCorner"), f"{bounds[0]!r} {bounds[1]!r}")
    _sub(bbox, _o("UpperCorner"), f"{bounds[2]!r} {bounds[3]!r}")
    _sub(layer, _o("Identifier"), spec.name)
    style = _sub(layer, _w("Style"), isDefault="true")
    _sub(style, _o("Title"), "Default" if spec is not STATUS else "Alert colours")
    _sub(style, _o("Identifier"), "default")
    _sub(layer, _w("Format"), FORMAT)
    _time_dimension(layer, versions)
    link = _sub(layer, _w("TileMatrixSetLink"))
    _sub(link, _w("TileMatrixSet"), TMS_ID)
    _limits(link, bounds)
    tiles = f"{base}/layers/{spec.name}/tiles/{TMS_ID}"
    template = f"{tiles}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png?version={{{TIME}}}"
    _sub(layer, _w("ResourceURL"), format=FORMAT, resourceType="tile", template=template)


def _tile_matrix_set(contents: ET.Element) -> None:
    """The WebMercatorQuad tile matrix set, from morecantile."""
    tms = _sub(contents, _w("TileMatrixSet"))
    _sub(tms, _o("Identifier"), TMS_ID)
    _sub(tms, _o("SupportedCRS"), f"urn:ogc:def:crs:EPSG::{TMS.crs.to_epsg()}")
    _sub(tms, _w("WellKnownScaleSet"), "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible")
    for matrix in TMS.tileMatrices:
        element = _sub(tms, _w("TileMatrix"))
        _sub(element, _o("Identifier"), matrix.id)
        _sub(element, _w("ScaleDenominator"), repr(matrix.scaleDenominator))
        _sub(element, _w("TopLeftCorner"), f"{matrix.pointOfOrigin[0]!r} {matrix.pointOfOrigin[1]!r}")
        _sub(element, _w("TileWidth"), str(matrix.tileWidth))
        _sub(element, _w("TileHeight"), str(matrix.tileHeight))
        _sub(element, _w("MatrixWidth"), str(matrix.matrixWidth))
        _sub(element, _w("MatrixHeight"), str(matrix.matrixHeight))


@router.get(CAPABILITIES_PATH, operation_id="getWMTSCapabilities", response_class=Response)
def wmts_capabilities(request: Request, registry: RegistryDep) -> Response:
    """WMTS 1.0.0 capabilities: one layer per named layer, WebMercatorQuad, the publication as dimension Time."""
    latest = registry.resolve(STATUS.name)  # every layer shares the area grid; 404 before the first publication
    with request.app.state.reader(str(latest.path)) as src:
        bounds = src.get_geographic_bounds(WGS84_CRS)
    versions = [p.id for p in registry.index().publications]
    base = str(request.base_url).rstrip("/")
    root = ET.Element(_w("Capabilities"), version="1.0.0")
    identification = _sub(root, _o("ServiceIdentification"))
    _sub(identification, _o("Title"), request.app.title)
    _sub(identification, _o("Abstract"), "Near-real-time forest disturbance alerts as map tiles.")
    _sub(identification, _o("ServiceType"), "OGC WMTS")
    _sub(identification, _o("ServiceTypeVersion"), "1.0.0")
    capabilities_url = f"{base}{CAPABILITIES_PATH}"
    _operations(root, capabilities_url, f"{base}/layers/")
    contents = _sub(root, _w("Contents"))
    for spec in registry.layers:
        _layer(contents, base, spec, bounds, versions)
    _tile_matrix_set(contents)
    _sub(root, _w("ServiceMetadataURL"), **{f"{{{XLINK_NS}}}href": capabilities_url})
    ET.indent(root)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/xml")
