"""WMS service exceptions and their XML ServiceExceptionReport."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.responses import Response

OGC_NS = "http://www.opengis.net/ogc"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# 1.1.1 names the CRS parameter SRS, and so its exception code.
CODES_1_1_1 = {"InvalidCRS": "InvalidSRS"}
MEDIA_TYPES = {"1.3.0": "text/xml", "1.1.1": "application/vnd.ogc.se_xml"}
MAX_ECHO = 120


class WMSException(Exception):
    """A request the service refuses, with its OGC exception code and HTTP status."""

    def __init__(self, code: str | None, message: str, *, locator: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.locator = locator
        self.status = status


def echo(value: str) -> str:
    """A client value quoted in a message, shortened so a report never grows with the request."""
    return repr(value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "...")


def report_xml(exc: WMSException, version: str) -> bytes:
    """The ServiceExceptionReport document of one exception."""
    # Namespaces are written as plain attributes: ElementTree's global prefix registry stays untouched.
    if version == "1.3.0":
        root = ET.Element(
            "ServiceExceptionReport",
            {
                "version": "1.3.0",
                "xmlns": OGC_NS,
                "xmlns:xsi": XSI_NS,
                "xsi:schemaLocation": f"{OGC_NS} http://schemas.opengis.net/wms/1.3.0/exceptions_1_3_0.xsd",
            },
        )
    else:
        root = ET.Element("ServiceExceptionReport", {"version": "1.1.1"})
    attrs = {}
    if exc.code:
        attrs["code"] = CODES_1_1_1.get(exc.code, exc.code) if version == "1.1.1" else exc.code
    if exc.locator:
        attrs["locator"] = exc.locator
    ET.SubElement(root, "ServiceException", attrs).text = exc.message
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def exception_response(exc: WMSException, version: str) -> Response:
    """An exception report with the exception's HTTP status (never cached: the next try may succeed)."""
    return Response(
        report_xml(exc, version),
        status_code=exc.status,
        media_type=MEDIA_TYPES.get(version, "text/xml"),
        headers={"Cache-Control": "no-store"},
    )
