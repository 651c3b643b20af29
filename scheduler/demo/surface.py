"""Cloud-free surface reflectance of the undisturbed scene on a given date."""

from __future__ import annotations

import datetime

import numpy as np

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.landcover import Cover, LandCover

Reflectance = dict[str, np.ndarray]
Endmember = dict[str, float]

# Day of year of the canopy's greenest state (mid-July).
PEAK_DOY = 196.0

SOIL: Endmember = {"green": 0.085, "red": 0.11, "nir08": 0.17, "swir16": 0.27, "swir22": 0.23}
GREEN_CROP: Endmember = {"green": 0.07, "red": 0.035, "nir08": 0.42, "swir16": 0.19, "swir22": 0.09}
WATER: Endmember = {"green": 0.05, "red": 0.035, "nir08": 0.02, "swir16": 0.01, "swir22": 0.005}
# Leaf water absorbs more at 2.2 than at 1.6 µm: a closed canopy's SWIR 2 is about half its SWIR 1.
FOREST_SWIR22_PER_SWIR16 = 0.47

# Green-vegetation fraction through the year (day of year, fraction) before the parcel's own shift/peak.
GREEN_FRACTION_CALENDAR: dict[Cover, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Sown in October, dormant over winter, peaks in May, harvested mid-July, bare stubble until sowing.
    Cover.WINTER_CROP: (
        (0, 60, 90, 130, 165, 190, 198, 285, 305, 365),
        (0.25, 0.28, 0.45, 1.0, 0.95, 0.45, 0.0, 0.0, 0.12, 0.25),
    ),
    # Bare soil all winter, sown in May, peak in August, harvested in September.
    Cover.SUMMER_CROP: (
        (0, 125, 150, 185, 235, 255, 262, 365),
        (0.0, 0.0, 0.2, 1.0, 1.0, 0.55, 0.0, 0.0),
    ),
    # Meadow: moderate seasonal cycle with two mowings.
    Cover.GRASS: (
        (0, 80, 130, 155, 158, 180, 215, 218, 245, 300, 365),
        (0.5, 0.55, 0.9, 0.95, 0.4, 0.85, 0.9, 0.4, 0.8, 0.7, 0.5),
    ),
}


def seasonality(when: datetime.date) -> float:
    """Annual cycle in [-1, 1]: +1 at the summer peak, -1 in mid-winter."""
    doy = when.timetuple().tm_yday
    return float(np.cos(2 * np.pi * (doy - PEAK_DOY) / 365.25))


def mix(a: Endmember | Reflectance, b: Endmember | Reflectance, fraction: np.ndarray | float) -> Reflectance:
    """Linear mixture (1 - fraction) * a + fraction * b for every band."""
    return {k: np.asarray((1.0 - fraction) * a[k] + fraction * b[k], dtype=np.float32) for k in REFLECTANCE_KEYS}


def surface_reflectance(landcover: LandCover, when: datetime.date) -> Reflectance:
    """Noise-free reflectance of every pixel on the given date."""
    refl = _open_land(landcover, when)
    forest = _forest(landcover, when)
    is_forest = landcover.forest
    is_water = landcover.water
    for key in REFLECTANCE_KEYS:
        band = refl[key]
        band[is_forest] = forest[key][is_forest]
        band[is_water] = WATER[key]
    return refl


def _forest(lc: LandCover, when: datetime.date) -> Reflectance:
    """Model a closed canopy: high NDVI with a smooth annual cycle, NIR brighter and SWIR darker in summer."""
    s = seasonality(when)
    ndvi = lc.forest_ndvi + lc.forest_ndvi_amplitude * s
    nir = lc.forest_nir * (1.0 + 0.08 * s)
    return {
        "green": lc.forest_green + 0.006 * s,
        "red": nir * (1.0 - ndvi) / (1.0 + ndvi),
        "nir08": nir,
        "swir16": lc.forest_swir - 0.012 * s,
        # Derived from SWIR 1 rather than drawn, so the land-cover stream (and every other band) stays as it was.
        "swir22": FOREST_SWIR22_PER_SWIR16 * lc.forest_swir - 0.008 * s,
    }


def _open_land(lc: LandCover, when: datetime.date) -> Reflectance:
    """Grassland and crops as soil/green-vegetation mixtures following each parcel's calendar."""
    doy = when.timetuple().tm_yday
    fraction = np.zeros(lc.cover.shape, dtype=np.float32)
    for cover, (days, values) in GREEN_FRACTION_CALENDAR.items():
        mask = lc.cover == cover
        fraction[mask] = np.interp(doy - lc.parcel_shift_days[mask], days, values, period=365)
    fraction *= lc.parcel_peak_cover
    soil = {k: SOIL[k] * lc.soil_brightness for k in REFLECTANCE_KEYS}
    return mix(soil, GREEN_CROP, fraction)
