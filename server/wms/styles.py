"""Named styles of each layer: the status classes in the XYZ tiles' colours, colour ramps for the others."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.encoding import date_from_days
from catalog.layers import CONFIDENCE, CONFIRMED, DATE, DATE_CONF, MAGNITUDE, STATUS
from server.routers.tiles import COLORMAPS

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class ClassStyle:
    """Status codes drawn with one RGBA colour each (transparent ones are hidden)."""

    name: str
    title: str
    colormap: dict[int, RGBA]


@dataclass(frozen=True)
class RampStyle:
    """Values rescaled over a range onto a 256-colour map; range None = the layer's data range."""

    name: str
    title: str
    colormap_name: str
    value_range: tuple[float, float] | None = None
    dates: bool = False

    @property
    def colormap(self) -> dict[int, RGBA]:
        """The 256 colours of the ramp."""
        return COLORMAPS.get(self.colormap_name)

    def label(self, value: float) -> str:
        """A legend label: a date for date layers, else a short number."""
        if self.dates:
            day = date_from_days(int(round(value)))
            return day.isoformat() if day else "-"
        return f"{value:g}"


Style = ClassStyle | RampStyle

# Same colour maps as the XYZ tiles' `colormap_name` (server/routers/tiles.py), so WMS and tiles agree.
STATUS_STYLES: tuple[ClassStyle, ...] = (
    ClassStyle("default", "Alerts (provisional, confirmed, finished)", COLORMAPS.get("alerts")),
    ClassStyle("alerts-all", "Alerts including first detections", COLORMAPS.get("alerts-all")),
    ClassStyle("context", "Monitored area (context)", COLORMAPS.get("context")),
)
RAMPS: dict[str, RampStyle] = {
    DATE.name: RampStyle("default", "Detection date (viridis over the data range)", "viridis", dates=True),
    CONFIRMED.name: RampStyle("default", "Confirmation date (viridis over the data range)", "viridis", dates=True),
    DATE_CONF.name: RampStyle("default", "GFW date and confidence (viridis over the data range)", "viridis"),
    MAGNITUDE.name: RampStyle("default", "Magnitude (rdylgn, -0.6 to 0.1)", "rdylgn", (-0.6, 0.1)),
    CONFIDENCE.name: RampStyle("default", "Confidence (magma, 0 to 40)", "magma", (0.0, 40.0)),
}


def layer_styles(layer: str) -> dict[str, Style]:
    """The styles of a layer by name, 'default' first."""
    if layer == STATUS.name:
        return {style.name: style for style in STATUS_STYLES}
    return {"default": RAMPS[layer]}
