"""GetCapabilities documents for WMS 1.3.0 and 1.1.1, built from the registry and the latest publication."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlencode

from fastapi import Request, Response

from catalog.errors import LayerNotFound
from catalog.layers import LayerSpec
from server.wms.caching import cache_control
from server.wms.crs import CRS84, GEOGRAPHIC, Box, map_crs, supported_codes
from server.wms.dataset import Extent, extent
from server.wms.featureinfo import INFO_FORMATS
from server.wms.getmap import MAP_FORMATS
from server.wms.inimage import EXCEPTION_FORMATS
from server.wms.legend import legend_size
from server.wms.params import MAX_SIZE
from server.wms.styles import layer_styles
from server.wms.timedim import time_values
from server.wms.urls import service_url

WMS_NS = "http://www.opengis.net/wms"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SLD_NS = "http://www.opengis.net/sld"
SCHEMAS = (
    f"{WMS_NS} http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd "
    f"{SLD_NS} http://schemas.opengis.net/sld/1.1.0/sld_capabilities.xsd"
)
DTD_1_1_1 = '<!DOCTYPE WMT_MS_Capabilities SYSTEM "http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd">\n'
MEDIA_TYPES = {"1.3.0": "text/xml", "1.1.1": "application/vnd.ogc.wms_xml"}
WORLD: Box = (-180.0, -90.0, 180.0, 90.0)
ABSTRACT = (
    "Near-real-time forest disturbance alerts from Sentinel-2, one layer per published band. "
    "TIME selects a publication: an instant the nearest one; a range, year, month or day the alerts first "
    "detected in it."
)
FORWARDED = "X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Prefix"


def _number(value: float) -> str:
    return format(value, ".12g")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


class CapabilitiesWriter:
    """Writes one capabilities document in one version."""

    def __init__(self, version: str, url: str, title: str, extent_: Extent | None, times: list[str]) -> None:
        self.version = version
        self.url = url
        self.title = title
        self.extent = extent_
        self.times = times
        self.crs_tag = "CRS" if version == "1.3.0" else "SRS"

    def document(self, update_sequence: str | None, layers: tuple[LayerSpec, ...]) -> bytes:
        """The whole document."""
        if self.version == "1.3.0":
            attrs = {
                "version": "1.3.0",
                "xmlns": WMS_NS,
                "xmlns:xlink": XLINK_NS,
                "xmlns:xsi": XSI_NS,
                "xmlns:sld": SLD_NS,
                "xsi:schemaLocation": SCHEMAS,
            }
            root = ET.Element("WMS_Capabilities", attrs)
        else:
            root = ET.Element("WMT_MS_Capabilities", {"version": "1.1.1"})
        if update_sequence:
            root.set("updateSequence", update_sequence)
        self.service(root)
        capability = _sub(root, "Capability")
        self.requests(capability)
        exception = _sub(capability, "Exception")
        for media_type in EXCEPTION_FORMATS[self.version]:
            _sub(exception, "Format", media_type)
        self.layer_tree(capability, layers if self.extent else ())
        body = ET.tostring(root, encoding="unicode")
        doctype = DTD_1_1_1 if self.version == "1.1.1" else ""
        return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}{body}'.encode()

    def online_resource(self, parent: ET.Element, href: str) -> None:
        """An xlink; 1.1.1's DTD declares the xlink namespace on OnlineResource itself, not on the root."""
        attrs = {"xlink:type": "simple", "xlink:href": href}
        if self.version == "1.1.1":
            attrs["xmlns:xlink"] = XLINK_NS
        _sub(parent, "OnlineResource", **attrs)

    def service(self, root: ET.Element) -> None:
        """The Service section."""
        service = _sub(root, "Service")
        _sub(service, "Name", "WMS" if self.version == "1.3.0" else "OGC:WMS")
        _sub(service, "Title", self.title)
        _sub(service, "Abstract", ABSTRACT)
        keywords = _sub(service, "KeywordList")
        for word in ("forest", "disturbance", "alerts", "Sentinel-2"):
            _sub(keywords, "Keyword", word)
        self.online_resource(service, self.url)
        _sub(service, "Fees", "none")
        _sub(service, "AccessConstraints", "none")
        if self.version == "1.3.0":
            _sub(service, "LayerLimit", "1")
            _sub(service, "MaxWidth", str(MAX_SIZE))
            _sub(service, "MaxHeight", str(MAX_SIZE))

    def operation(self, parent: ET.Element, tag: str, formats: tuple[str, ...]) -> None:
        """One operation with its formats and GET endpoint."""
        element = _sub(parent, tag)
        for media_type in formats:
            _sub(element, "Format", media_type)
        get = _sub(_sub(_sub(element, "DCPType"), "HTTP"), "Get")
        self.online_resource(get, f"{self.url}?")

    def requests(self, capability: ET.Element) -> None:
        """The Request section: GetCapabilities, GetMap, GetFeatureInfo and GetLegendGraphic."""
        request = _sub(capability, "Request")
        self.operation(request, "GetCapabilities", (MEDIA_TYPES[self.version],))
        self.operation(request, "GetMap", MAP_FORMATS)
        self.operation(request, "GetFeatureInfo", INFO_FORMATS)
        # 1.3.0 lists GetLegendGraphic as the SLD profile's extended operation; 1.1.1's DTD has it directly.
        self.operation(
            request, "sld:GetLegendGraphic" if self.version == "1.3.0" else "GetLegendGraphic", ("image/png",)
        )

    def geographic_box(self, layer: ET.Element, box: Box) -> None:
        """EX_GeographicBoundingBox (1.3.0) or LatLonBoundingBox (1.1.1)."""
        west, south, east, north = box
        if self.version == "1.3.0":
            element = _sub(layer, "EX_GeographicBoundingBox")
            for tag, value in (
                ("westBoundLongitude", west),
                ("eastBoundLongitude", east),
                ("southBoundLatitude", south),
                ("northBoundLatitude", north),
            ):
                _sub(element, tag, _number(value))
        else:
            _sub(
                layer,
                "LatLonBoundingBox",
                minx=_number(west),
                miny=_number(south),
                maxx=_number(east),
                maxy=_number(north),
            )

    def bounding_boxes(self, layer: ET.Element, bounds: dict[str, Box]) -> None:
        """A BoundingBox per CRS, in the axis order of the version (1.3.0 EPSG:4326: latitude first)."""
        for code, box in bounds.items():
            minx, miny, maxx, maxy = map_crs(code).from_xy(box, self.version)
            attrs = {
                self.crs_tag: code,
                "minx": _number(minx),
                "miny": _number(miny),
                "maxx": _number(maxx),
                "maxy": _number(maxy),
            }
            _sub(layer, "BoundingBox", **attrs)

    def time_dimension(self, layer: ET.Element) -> None:
        """The time dimension: the publication datetimes (default latest); nearest, ranges, lists, `current`."""
        attrs = {"name": "time", "default": self.times[-1], "nearestValue": "1", "multipleValues": "1", "current": "1"}
        values = ",".join(self.times)
        if self.version == "1.3.0":
            _sub(layer, "Dimension", values, units="ISO8601", **attrs)
        else:
            _sub(layer, "Dimension", name="time", units="ISO8601")
            _sub(layer, "Extent", values, **attrs)

    def styles(self, layer: ET.Element, name: str) -> None:
        """Each style with its GetLegendGraphic URL."""
        for style in layer_styles(name).values():
            element = _sub(layer, "Style")
            _sub(element, "Name", style.name)
            _sub(element, "Title", style.title)
            width, height = legend_size(style)
            legend = _sub(element, "LegendURL", width=str(width), height=str(height))
            _sub(legend, "Format", "image/png")
            query = {
                "SERVICE": "WMS",
                "REQUEST": "GetLegendGraphic",
                "VERSION": self.version,
                "FORMAT": "image/png",
                "LAYER": name,
                "STYLE": style.name,
            }
            if self.version == "1.3.0":
                query["SLD_VERSION"] = "1.1.0"
            self.online_resource(legend, f"{self.url}?{urlencode(query)}")

    def layer_tree(self, capability: ET.Element, layers: tuple[LayerSpec, ...]) -> None:
        """A root layer holding the CRS list, and one named, queryable layer per published layer."""
        root = _sub(capability, "Layer")
        _sub(root, "Title", self.title)
        _sub(root, "Abstract", ABSTRACT)
        native = self.extent.native if self.extent else None
        for code in supported_codes(native):
            _sub(root, self.crs_tag, code)
        self.geographic_box(root, self.extent.lonlat if self.extent else WORLD)
        if self.extent:
            self.bounding_boxes(root, self.extent.bounds)
        else:
            self.bounding_boxes(root, {CRS84: WORLD, GEOGRAPHIC: WORLD})
        for spec in layers:
            layer = _sub(root, "Layer", queryable="1", opaque="0")
            _sub(layer, "Name", spec.name)
            _sub(layer, "Title", spec.title)
            _sub(layer, "Abstract", spec.description)
            self.geographic_box(layer, self.extent.lonlat)
            self.bounding_boxes(layer, self.extent.bounds)
            self.time_dimension(layer)
            self.styles(layer, spec.name)


def get_capabilities(request: Request, version: str) -> Response:
    """Answer GetCapabilities (no vendor parameter needed; an empty layer list before the first publication)."""
    state = request.app.state
    registry = state.registry
    index = registry.index()
    extent_ = None
    if index.latest is not None:
        try:
            extent_ = extent(state.reader, str(registry.resolve(registry.layers[0].name).path))
        except LayerNotFound:
            extent_ = None
    writer = CapabilitiesWriter(version, service_url(request), state.settings.title, extent_, time_values(index))
    body = writer.document(index.latest.id if index.latest else None, registry.layers)
    headers = {"Cache-Control": cache_control(False, state.settings.latest_max_age), "Vary": FORWARDED}
    return Response(body, media_type=MEDIA_TYPES[version], headers=headers)
