"""EXCEPTIONS=INIMAGE and BLANK: a failed GetMap answered with a picture (the error written in it, or empty)."""

from __future__ import annotations

import textwrap

import numpy as np
from fastapi.responses import Response
from PIL import Image, ImageDraw

from server.wms.errors import WMSException, exception_response
from server.wms.getmap import MAP_FORMATS
from server.wms.params import OPERATIONS, WMSParams, parse_bgcolor, parse_bool, parse_format, parse_size
from server.wms.render import encode

# The 1.3.0 names, and the 1.1.1 media types; anything else (XML included) is an exception report.
MODES = {
    "inimage": "inimage",
    "blank": "blank",
    "application/vnd.ogc.se_inimage": "inimage",
    "application/vnd.ogc.se_blank": "blank",
}
EXCEPTION_FORMATS = {
    "1.3.0": ("XML", "INIMAGE", "BLANK"),
    "1.1.1": ("application/vnd.ogc.se_xml", "application/vnd.ogc.se_inimage", "application/vnd.ogc.se_blank"),
}
TEXT_RGBA = (200, 0, 0, 255)
MARGIN = 4
LINE_HEIGHT = 12
CHARS_PER_PIXEL = 1 / 6  # the default bitmap font is 6 px wide


def exception_mode(params: WMSParams) -> str | None:
    """'inimage' or 'blank' for a GetMap that asks for its errors as a picture, else None."""
    if OPERATIONS.get((params.get("REQUEST") or "").strip().lower()) != "GetMap":
        return None
    return MODES.get((params.get("EXCEPTIONS") or "").strip().lower())


def exception_picture(exc: WMSException, params: WMSParams, mode: str) -> bytes | None:
    """The map-sized picture of an error; None when the request does not say how to draw one (size, format)."""
    try:
        width, height = parse_size(params)
        media_type = parse_format(params.get("FORMAT") or "image/png", MAP_FORMATS)
        transparent = parse_bool(params.get("TRANSPARENT"), "TRANSPARENT", default=False)
        bgcolor = parse_bgcolor(params.get("BGCOLOR"))
    except WMSException:
        return None
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    if mode == "inimage":
        image = Image.fromarray(rgba, "RGBA")
        lines = textwrap.wrap(exc.message, max(8, int((width - 2 * MARGIN) * CHARS_PER_PIXEL)))
        ImageDraw.Draw(image).multiline_text((MARGIN, MARGIN), "\n".join(lines), fill=TEXT_RGBA)
        rgba = np.asarray(image)
    return encode(rgba, media_type, transparent, bgcolor)


def error_response(exc: WMSException, params: WMSParams, version: str) -> Response:
    """The answer to a failed request: the picture EXCEPTIONS asks a GetMap for, else an exception report."""
    mode = exception_mode(params)
    picture = exception_picture(exc, params, mode) if mode else None
    if picture is None:
        return exception_response(exc, version)
    # A picture is what the client's map shows: 200, as GeoServer answers; never cached, the next try may succeed.
    media_type = parse_format(params.get("FORMAT") or "image/png", MAP_FORMATS)
    headers = {"Cache-Control": "no-store", "X-WMS-Exception": exc.code or "NoApplicableCode"}
    return Response(picture, media_type=media_type, headers=headers)
