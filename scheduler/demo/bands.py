"""Sentinel-2 L2A band metadata for the assets of the demo archive (Earth Search asset keys)."""

from __future__ import annotations

from dataclasses import dataclass

# Processing baseline 04.00: reflectance = DN * SCALE + OFFSET, DN 0 is nodata.
SCALE = 0.0001
OFFSET = -0.1
NODATA = 0


@dataclass(frozen=True)
class Band:
    """One reflectance band: asset key (= eo common name), S2 band name, centre wavelength and FWHM in µm."""

    key: str
    name: str
    center_wavelength: float
    fwhm: float
    title: str


REFLECTANCE_BANDS: tuple[Band, ...] = (
    Band("green", "B03", 0.560, 0.045, "Green (band 3)"),
    Band("red", "B04", 0.665, 0.038, "Red (band 4)"),
    Band("nir08", "B8A", 0.865, 0.033, "NIR 2 (band 8A)"),
    Band("swir16", "B11", 1.610, 0.143, "SWIR 1 (band 11)"),
    # Added after the first release (for NBR): its noise comes from its own stream, see scene.py.
    Band("swir22", "B12", 2.190, 0.242, "SWIR 2 (band 12)"),
)
REFLECTANCE_KEYS: tuple[str, ...] = tuple(b.key for b in REFLECTANCE_BANDS)
SCL_KEY = "scl"
ASSET_KEYS: tuple[str, ...] = (*REFLECTANCE_KEYS, SCL_KEY)
