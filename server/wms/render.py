"""Colour a layer's values with a style and encode the picture as PNG or JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from rio_tiler.models import ImageData

from server.wms.styles import RGBA, ClassStyle, RampStyle, Style

FALLBACK_RANGE = (0.0, 1.0)


def lookup_table(colormap: dict[int, RGBA]) -> np.ndarray:
    """A (256, 4) uint8 table from a colour map; codes it lacks are transparent."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for code, rgba in colormap.items():
        if 0 <= int(code) <= 255:
            table[int(code)] = rgba
    return table


def colourize(img: ImageData, style: Style, value_range: tuple[float, float] | None) -> np.ndarray:
    """The (rows, cols, 4) RGBA picture of a one-band image; masked pixels are transparent."""
    band = img.array[0]
    valid = ~np.ma.getmaskarray(band)
    if isinstance(style, ClassStyle):
        codes = np.clip(np.ma.filled(band, 0), 0, 255).astype(np.uint8)
    else:
        low, high = ramp_range(style, value_range)
        values = np.ma.filled(band.astype("float64"), low)
        valid &= np.isfinite(values)
        scaled = (np.nan_to_num(values, nan=low) - low) / ((high - low) or 1.0)
        codes = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    rgba = lookup_table(style.colormap)[codes]
    rgba[..., 3] = np.where(valid, rgba[..., 3], 0)
    return rgba


def encode(rgba: np.ndarray, media_type: str, transparent: bool, bgcolor: tuple[int, int, int]) -> bytes:
    """PNG with alpha when transparent, else the picture laid on BGCOLOR (JPEG is always opaque)."""
    buffer = io.BytesIO()
    if transparent and media_type == "image/png":
        Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
        return buffer.getvalue()
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    background = np.array(bgcolor, dtype=np.float32)
    rgb = np.round(rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if media_type == "image/png":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def ramp_range(style: RampStyle, value_range: tuple[float, float] | None) -> tuple[float, float]:
    """The range a ramp style spans: its own, else the layer's data range."""
    return style.value_range or value_range or FALLBACK_RANGE
