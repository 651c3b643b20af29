"""Partial canopy loss or stress: lowering a forest pixel's NDVI by a given amount, with matching NIR and SWIR."""

from __future__ import annotations

import numpy as np

from scheduler.demo.surface import Reflectance

# A thinner or stressed canopy exposes soil and holds less water: SWIR 2 rises a bit less than SWIR 1.
SWIR22_PER_SWIR16_GAIN = 0.8
GREEN_GAIN = 0.03


def lower_ndvi(
    refl: Reflectance,
    rows: np.ndarray,
    cols: np.ndarray,
    drop: np.ndarray | float,
    *,
    nir_loss: float,
    swir_gain: float,
) -> None:
    """Lower NDVI by exactly `drop` (before noise) in place: NIR down and red up, SWIR up, all per unit drop."""
    drop = np.asarray(drop, dtype=np.float32)
    red = refl["red"][rows, cols]
    nir = refl["nir08"][rows, cols]
    target = (nir - red) / np.maximum(nir + red, 1e-6) - drop
    nir = nir * (1.0 - nir_loss * drop)
    # Solving NDVI = (nir - red) / (nir + red) for red keeps the drop exact whatever NIR does.
    refl["nir08"][rows, cols] = nir
    refl["red"][rows, cols] = nir * (1.0 - target) / (1.0 + target)
    refl["swir16"][rows, cols] += swir_gain * drop
    refl["swir22"][rows, cols] += SWIR22_PER_SWIR16_GAIN * swir_gain * drop
    refl["green"][rows, cols] += GREEN_GAIN * drop
