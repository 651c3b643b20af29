"""Sen2Cor scene classification (SCL) codes and the clear-sky labelling rule."""

from __future__ import annotations

import numpy as np

NO_DATA = 0
SATURATED = 1
DARK_AREA = 2
CLOUD_SHADOW = 3
VEGETATION = 4
NOT_VEGETATED = 5
WATER = 6
UNCLASSIFIED = 7
CLOUD_MEDIUM = 8
CLOUD_HIGH = 9
THIN_CIRRUS = 10
SNOW = 11

# What eo:cloud_cover counts (shadows included, as the demo's definition).
CLOUDY_CLASSES = (CLOUD_SHADOW, CLOUD_MEDIUM, CLOUD_HIGH, THIN_CIRRUS)

DESCRIPTION = (
    "Sen2Cor scene classification: 0 no data, 1 saturated, 2 dark area, 3 cloud shadow, 4 vegetation, "
    "5 not vegetated, 6 water, 7 unclassified, 8 cloud medium probability, 9 cloud high probability, "
    "10 thin cirrus, 11 snow"
)

# Sen2Cor separates vegetation from bare surfaces roughly at this NDVI.
VEGETATION_NDVI = 0.4


def clear_sky_scl(red: np.ndarray, nir: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Label cloud-free pixels as vegetation, not-vegetated or water."""
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.where(ndvi >= VEGETATION_NDVI, VEGETATION, NOT_VEGETATED).astype(np.uint8)
    scl[water] = WATER
    return scl


def cloud_cover_percent(scl: np.ndarray) -> float:
    """Percentage of valid (non-nodata) pixels flagged as cloud, cirrus or cloud shadow."""
    valid = scl != NO_DATA
    n_valid = int(valid.sum())
    if n_valid == 0:
        return 0.0
    cloudy = np.isin(scl, CLOUDY_CLASSES) & valid
    return round(100.0 * float(cloudy.sum()) / n_valid, 2)
