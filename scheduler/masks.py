"""Cloud masks as providers ship them: a class band (Sentinel-2 SCL) or a bit field (Landsat qa_pixel, HLS Fmask)."""

from __future__ import annotations

import numpy as np

# Bit numbers by name, per bit-field layout (bit 0 is the least significant).
BIT_LAYOUTS: dict[str, dict[str, int]] = {
    # USGS Landsat Collection 2 Level-2 QA_PIXEL (bits 8-15 are confidence pairs, rejected here by number if wanted).
    "landsat-qa-pixel": {
        "fill": 0,
        "dilated_cloud": 1,
        "cirrus": 2,
        "cloud": 3,
        "shadow": 4,
        "snow": 5,
        "clear": 6,
        "water": 7,
    },
    # NASA HLS v2.0 Fmask (bits 6-7 are the aerosol level).
    "hls-fmask": {"cirrus": 0, "cloud": 1, "adjacent": 2, "shadow": 3, "snow": 4, "water": 5},
}

_NAN = np.float32(np.nan)


def bit_number(layout: str, bit: str | int) -> int:
    """A bit given by name (in `layout`) or by number; ValueError naming the known names otherwise."""
    if isinstance(bit, int):
        if not 0 <= bit < 16:
            raise ValueError(f"bit {bit} is outside 0-15")
        return bit
    names = BIT_LAYOUTS[layout]
    if bit not in names:
        raise ValueError(f"unknown bit {bit!r} of {layout} (known: {', '.join(names)}, or a bit number 0-15)")
    return names[bit]


def invalid_bits(layout: str, bits: list[str | int]) -> int:
    """The mask of the bits that make a pixel unusable."""
    value = 0
    for bit in bits:
        value |= 1 << bit_number(layout, bit)
    return value


def clear_lookup(mask: np.ndarray, valid: list[int], invalid: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The mask band and a table of factors by mask value (1 clear, NaN not), for the loading kernels.

    Classes: clear where the value is in `valid` (np.isin). Bit field (`invalid` non-zero): clear where none of the
    `invalid` bits is set. uint8 and uint16 masks index a table of every value; other types get (not clear, clear).
    """
    if mask.dtype.kind == "u" and mask.dtype.itemsize <= 2:
        size = 1 << (8 * mask.dtype.itemsize)
        if invalid:
            clear = np.where(np.arange(size) & invalid, _NAN, np.float32(1)).astype(np.float32)
        else:
            clear = np.full(size, _NAN, dtype=np.float32)
            clear[[v for v in valid if 0 <= v < size]] = 1
        return mask, clear
    ok = (mask.astype(np.int64) & invalid) == 0 if invalid else np.isin(mask, valid)
    return ok.view(np.uint8), np.array([_NAN, 1], dtype=np.float32)
