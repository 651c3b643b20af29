"""WMS query parameters: case-insensitive names, version negotiation and the parsing of each value."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from server.filters import PARAM_NAMES, AlertFilter, FilterError, parse_filter
from server.wms.errors import WMSException, echo

DEFAULT_VERSION = "1.3.0"
MAX_SIZE = 4096
# Request names, also the WMS 1.0 spellings some old clients still send.
OPERATIONS = {
    "getcapabilities": "GetCapabilities",
    "capabilities": "GetCapabilities",
    "getmap": "GetMap",
    "map": "GetMap",
    "getfeatureinfo": "GetFeatureInfo",
    "feature_info": "GetFeatureInfo",
    "getlegendgraphic": "GetLegendGraphic",
}
BGCOLOR = re.compile(r"(?:0x|#)([0-9A-Fa-f]{6})")
# ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses.
INTEGER = re.compile(r"-?[0-9]{1,9}")
# A thousand times the Earth's circumference in metres: beyond it no CRS has a coordinate, and GDAL overflows.
MAX_COORDINATE = 4e10


class WMSParams:
    """Query parameters looked up by case-insensitive name (the first of repeated names wins)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in items:
            self._values.setdefault(name.lower(), value)

    def get(self, name: str) -> str | None:
        """The value of a parameter, or None when absent."""
        return self._values.get(name.lower())

    def require(self, name: str) -> str:
        """The value of a mandatory parameter; MissingParameterValue when absent or empty."""
        value = self.get(name)
        if value is None or not value.strip():
            raise WMSException("MissingParameterValue", f"missing parameter {name}", locator=name)
        return value.strip()


def negotiate_version(params: WMSParams) -> str:
    """The version to answer in: 1.3.0 from 1.3 on, 1.1.1 below; by default 1.3.0, or 1.1.1 for a 1.1-style GetMap."""
    value = params.get("version") or params.get("wmtver")
    if not value:
        # A GetMap without VERSION that names its CRS in SRS is written for 1.1.1.
        return "1.1.1" if params.get("srs") and not params.get("crs") else DEFAULT_VERSION
    try:
        number = tuple(int(part) for part in value.strip().split("."))
    except ValueError:
        return DEFAULT_VERSION
    return "1.3.0" if number >= (1, 3) else "1.1.1"


def parse_operation(params: WMSParams) -> str:
    """The requested operation; OperationNotSupported for any other."""
    value = params.require("REQUEST")
    operation = OPERATIONS.get(value.lower())
    if operation is None:
        raise WMSException("OperationNotSupported", f"unsupported REQUEST {echo(value)}", locator="REQUEST")
    return operation


def check_service(params: WMSParams) -> None:
    """SERVICE may be absent (1.1.1 GetMap has none) but, when given, must be WMS."""
    value = params.get("service")
    if value is not None and value.strip().upper() != "WMS":
        raise WMSException("InvalidParameterValue", f"SERVICE must be WMS, not {echo(value)}", locator="SERVICE")


def parse_layer(value: str, known: Sequence[str], locator: str = "LAYERS") -> str:
    """One layer name among the known ones: the name is a key, never a path."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(names) != 1:
        raise WMSException(
            "InvalidParameterValue", f"one layer per request (LayerLimit 1), got {echo(value)}", locator=locator
        )
    if names[0] not in known:
        raise WMSException(
            "LayerNotDefined", f"unknown layer {echo(names[0])}; layers: {', '.join(known)}", locator=locator
        )
    return names[0]


def parse_style(value: str | None, known: Sequence[str], locator: str = "STYLES") -> str:
    """One style name among the layer's; empty means 'default'."""
    names = [name.strip() for name in (value or "").split(",")]
    if len(names) > 1:
        raise WMSException("InvalidParameterValue", f"one style per layer, got {echo(value or '')}", locator=locator)
    name = names[0] or "default"
    if name not in known:
        raise WMSException(
            "StyleNotDefined", f"unknown style {echo(name)}; styles: {', '.join(known)}", locator=locator
        )
    return name


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """Four finite numbers, min before max, in the order the client sent them."""
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise WMSException("InvalidParameterValue", f"BBOX must be four numbers, not {echo(value)}", locator="BBOX")
    if not all(abs(n) <= MAX_COORDINATE for n in numbers):
        raise WMSException(
            "InvalidParameterValue", f"BBOX coordinates must lie within +-{MAX_COORDINATE:g}", locator="BBOX"
        )
    if numbers[0] >= numbers[2] or numbers[1] >= numbers[3]:
        raise WMSException("InvalidParameterValue", "BBOX minimum must be below its maximum", locator="BBOX")
    return numbers  # type: ignore[return-value]


def parse_size(params: WMSParams) -> tuple[int, int]:
    """WIDTH and HEIGHT in 1..MAX_SIZE pixels."""
    size = []
    for name in ("WIDTH", "HEIGHT"):
        value = params.require(name)
        if not INTEGER.fullmatch(value) or not 1 <= int(value) <= MAX_SIZE:
            raise WMSException("InvalidParameterValue", f"{name} must be an integer from 1 to {MAX_SIZE}", locator=name)
        size.append(int(value))
    return size[0], size[1]


def parse_format(value: str, allowed: Sequence[str], locator: str = "FORMAT") -> str:
    """A media type among the allowed ones (parameters such as '; mode=8bit' ignored)."""
    media = value.split(";")[0].strip().lower()
    if media not in allowed:
        raise WMSException(
            "InvalidFormat", f"unsupported {locator} {echo(value)}; formats: {', '.join(allowed)}", locator=locator
        )
    return media


def parse_bool(value: str | None, name: str, *, default: bool) -> bool:
    """TRUE or FALSE in any case."""
    if value is None or not value.strip():
        return default
    text = value.strip().upper()
    if text not in ("TRUE", "FALSE"):
        raise WMSException("InvalidParameterValue", f"{name} must be TRUE or FALSE", locator=name)
    return text == "TRUE"


def parse_bgcolor(value: str | None) -> tuple[int, int, int]:
    """BGCOLOR 0xRRGGBB (white by default)."""
    if value is None or not value.strip():
        return 255, 255, 255
    match = BGCOLOR.fullmatch(value.strip())
    if match is None:
        raise WMSException("InvalidParameterValue", "BGCOLOR must be 0xRRGGBB", locator="BGCOLOR")
    hex_ = match.group(1)
    return int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16)


def parse_pixel(params: WMSParams, version: str, width: int, height: int) -> tuple[int, int]:
    """The queried pixel: I/J in 1.3.0, X/Y in 1.1.1 (either spelling accepted), inside the map."""
    names = ("I", "J") if version == "1.3.0" else ("X", "Y")
    others = ("X", "Y") if version == "1.3.0" else ("I", "J")
    if params.get(names[0]) is None and params.get(others[0]) is not None:
        names = others
    pixel = []
    for name, limit in zip(names, (width, height), strict=True):
        value = params.require(name)
        if not INTEGER.fullmatch(value) or not 0 <= int(value) < limit:
            raise WMSException("InvalidPoint", f"{name} must be a pixel of the map (0 to {limit - 1})", locator=name)
        pixel.append(int(value))
    return pixel[0], pixel[1]


def parse_alert_filter(params: WMSParams) -> AlertFilter | None:
    """The vendor alert-filter parameters (DETECTED_AFTER, DETECTED_BEFORE, MIN_CONFIDENCE, STAGE), None if absent."""
    try:
        return parse_filter(*(params.get(name) for name in PARAM_NAMES))
    except FilterError as exc:
        raise WMSException("InvalidParameterValue", str(exc), locator=exc.name.upper()) from None
