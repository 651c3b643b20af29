"""GetFeatureInfo as GML 2 (application/vnd.ogc.gml), laid out as GeoServer writes it: QGIS's default format."""

from __future__ import annotations

import xml.etree.ElementTree as ET

GML_FORMATS = ("application/vnd.ogc.gml",)
WFS_NS = "http://www.opengis.net/wfs"
GML_NS = "http://www.opengis.net/gml"
# The feature types' own namespace (GeoServer's workspace URI): a name, never fetched.
NRT_NS = "urn:x-nrt-alerts"
GEOMETRY = "geometry"

Info = dict[str, object]


def as_gml(info: Info | None, layer: str) -> bytes:
    """A wfs:FeatureCollection with the pixel as one `nrt:<layer>` feature (a point), or none outside the area."""
    # Prefixed names are written as plain attributes: ElementTree's global prefix registry stays untouched.
    root = ET.Element("wfs:FeatureCollection", {"xmlns:wfs": WFS_NS, "xmlns:gml": GML_NS, "xmlns:nrt": NRT_NS})
    bounded = ET.SubElement(root, "gml:boundedBy")
    if info is None:
        ET.SubElement(bounded, "gml:null").text = "unknown"
        return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    coordinates = f"{info['longitude']},{info['latitude']}"
    box = ET.SubElement(bounded, "gml:Box", srsName="EPSG:4326")
    ET.SubElement(box, "gml:coordinates", decimal=".", cs=",", ts=" ").text = f"{coordinates} {coordinates}"
    feature = ET.SubElement(ET.SubElement(root, "gml:featureMember"), f"nrt:{layer}", fid=f"{layer}.{info['version']}")
    for name, value in info.items():
        ET.SubElement(feature, f"nrt:{name}").text = "" if value is None else str(value)
    point = ET.SubElement(ET.SubElement(feature, f"nrt:{GEOMETRY}"), "gml:Point", srsName="EPSG:4326")
    ET.SubElement(point, "gml:coordinates", decimal=".", cs=",", ts=" ").text = coordinates
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
