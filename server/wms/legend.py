"""GetLegendGraphic pictures: a swatch and label per shown status class, or a colour ramp with its end labels."""

from __future__ import annotations

import io
from functools import lru_cache

from fastapi import Request, Response
from PIL import Image, ImageDraw, ImageFont

from catalog.encoding import STATUS_CLASSES
from server.wms.caching import cache_control
from server.wms.dataset import data_range
from server.wms.params import WMSParams, parse_format, parse_layer, parse_style
from server.wms.render import lookup_table, ramp_range
from server.wms.styles import RGBA, ClassStyle, RampStyle, Style, layer_styles
from server.wms.timedim import resolve_time

FONT_SIZE = 12
ROW = 18
SWATCH = 14
PAD = 6
TEXT_X = PAD + SWATCH + 6
RAMP_SIZE = (220, 44)
RAMP_BAR = (PAD, PAD, RAMP_SIZE[0] - PAD, PAD + 16)
BACKGROUND = (255, 255, 255, 255)
INK = (0, 0, 0, 255)
MONITORED = frozenset(range(0, 9))


@lru_cache(maxsize=1)
def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font: nothing is fetched, nothing depends on the system's fonts."""
    return ImageFont.load_default(size=FONT_SIZE)


def class_entries(style: ClassStyle) -> list[tuple[RGBA, str]]:
    """(colour, label) of each shown colour; classes sharing a colour share a row."""
    groups: dict[RGBA, list[int]] = {}
    for status_class in STATUS_CLASSES:
        rgba = tuple(style.colormap.get(int(status_class.code), (0, 0, 0, 0)))
        if rgba[3]:  # transparent classes are not drawn, so not listed
            groups.setdefault(rgba, []).append(int(status_class.code))
    names = {int(c.code): c.name for c in STATUS_CLASSES}
    entries = []
    for rgba, codes in groups.items():
        if len(codes) == 1:
            label = names[codes[0]]
        elif set(codes) == MONITORED:
            label = "monitored forest"
        else:
            label = " / ".join(names[code] for code in codes)
        entries.append((rgba, label))
    return entries


def legend_size(style: Style) -> tuple[int, int]:
    """Width and height of a style's legend (also written in the capabilities' LegendURL)."""
    if isinstance(style, RampStyle):
        return RAMP_SIZE
    entries = class_entries(style)
    text_width = max((int(font().getlength(label)) for _, label in entries), default=0)
    return TEXT_X + text_width + PAD, max(1, len(entries)) * ROW + 2 * PAD - (ROW - SWATCH)


def class_legend(style: ClassStyle) -> Image.Image:
    """Swatches and class names, one row each."""
    image = Image.new("RGBA", legend_size(style), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, (rgba, label) in enumerate(class_entries(style)):
        top = PAD + row * ROW
        draw.rectangle((PAD, top, PAD + SWATCH - 1, top + SWATCH - 1), fill=rgba)
        draw.text((TEXT_X, top + SWATCH // 2), label, fill=INK, font=font(), anchor="lm")
    return image


def ramp_legend(style: RampStyle, value_range: tuple[float, float]) -> Image.Image:
    """The ramp's 256 colours across a bar, its minimum and maximum below."""
    image = Image.new("RGBA", RAMP_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    table = lookup_table(style.colormap)
    left, top, right, bottom = RAMP_BAR
    for x in range(left, right):
        colour = tuple(int(v) for v in table[round((x - left) * 255 / max(1, right - left - 1))])
        draw.line((x, top, x, bottom - 1), fill=colour)
    low, high = value_range
    draw.text((left, bottom + 3), style.label(low), fill=INK, font=font(), anchor="lt")
    draw.text((right, bottom + 3), style.label(high), fill=INK, font=font(), anchor="rt")
    return image


def legend_png(style: Style, value_range: tuple[float, float] | None) -> bytes:
    """The legend of a style as PNG bytes."""
    image = class_legend(style) if isinstance(style, ClassStyle) else ramp_legend(style, ramp_range(style, value_range))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def get_legend_graphic(request: Request, params: WMSParams) -> Response:
    """Answer GetLegendGraphic (LAYER, STYLE, FORMAT image/png; TIME picks the data range of a ramp)."""
    state = request.app.state
    names = [spec.name for spec in state.registry.layers]
    layer = parse_layer(params.require("LAYER"), names, locator="LAYER")
    styles = layer_styles(layer)
    style = styles[parse_style(params.get("STYLE"), list(styles), locator="STYLE")]
    parse_format(params.get("FORMAT") or "image/png", ("image/png",))
    value_range = None
    if isinstance(style, RampStyle) and style.value_range is None:
        publication = resolve_time(state.registry.index(), params.get("TIME")).publication
        path = str(state.registry.resolve(layer, publication.id).path)
        value_range = data_range(state.reader, path)
    return Response(
        legend_png(style, value_range),
        media_type="image/png",
        headers={"Cache-Control": cache_control(False, state.settings.latest_max_age)},
    )
