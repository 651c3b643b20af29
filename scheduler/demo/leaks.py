"""Small clouds and their halos that the scene classification misses: bright, yet labelled clear in SCL."""

from __future__ import annotations

import numpy as np

from scheduler.demo import scl as SCL
from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.clouds import CLOUD_COLOUR
from scheduler.demo.fields import dilate, smooth_field
from scheduler.demo.surface import Reflectance

# Fair-weather cumulus and cloud edges: a few hundred metres across.
BLOB_SCALE_M = (60.0, 200.0)
# Thin enough to pass Sen2Cor's tests, thick enough to pull forest NDVI down by 0.1-0.5.
CORE_OPACITY = (0.15, 0.45)
HALO_OPACITY = (0.04, 0.12)
BRIGHTNESS = 0.5
CLEAR = (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.UNCLASSIFIED)


def add_leaked_clouds(
    refl: Reflectance, scl: np.ndarray, rng: np.random.Generator, resolution: float, fraction: float
) -> np.ndarray:
    """Brighten on average `fraction` of the clear pixels with missed clouds and halos; return the leaked mask.

    Each scene draws its own share in [0, 2 fraction], so most scenes hold a few leaks and some many. The leaked
    pixels keep a clear label (recomputed from their NDVI, as Sen2Cor would: vegetation or not-vegetated).
    """
    clear = np.isin(scl, CLEAR)
    share = rng.uniform(0.0, 2.0 * fraction)
    if share <= 0 or not clear.any():
        return np.zeros(scl.shape, dtype=bool)
    field = smooth_field(rng, scl.shape, rng.uniform(*BLOB_SCALE_M) / resolution)
    # Cores take about half the share, the two-pixel halo ring around them the rest.
    core = field > np.quantile(field, 1.0 - share / 2)
    halo = dilate(dilate(core)) & ~core
    opacity = np.zeros(scl.shape, dtype=np.float32)
    opacity[core] = rng.uniform(*CORE_OPACITY)
    opacity[halo] = rng.uniform(*HALO_OPACITY)
    leaked = (core | halo) & clear
    opacity[~leaked] = 0.0
    for key in REFLECTANCE_KEYS:
        band = refl[key]
        band += opacity * (BRIGHTNESS * CLOUD_COLOUR[key] - band)
    relabelled = SCL.clear_sky_scl(refl["red"], refl["nir08"], scl == SCL.WATER)
    scl[leaked] = relabelled[leaked]
    return leaked
