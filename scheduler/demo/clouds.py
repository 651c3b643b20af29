"""Clouds, thin cirrus, cloud shadows and an imperfect cloud mask, drawn onto one acquisition in place."""

from __future__ import annotations

import numpy as np

from scheduler.demo import scl as SCL
from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.fields import dilate, shift_mask, smooth_field
from scheduler.demo.surface import Reflectance

# Clouds are nearly white; ice/water absorption makes them a bit darker in the SWIR.
CLOUD_COLOUR = {"green": 1.0, "red": 0.98, "nir08": 1.0, "swir16": 0.78, "swir22": 0.62}
CLOUD_BRIGHTNESS = (0.45, 0.6)
COVER_FRACTION = (0.05, 1.0)
BLOB_SCALE_M = (200.0, 600.0)
# Depth (0 at the cloud edge, 1 at its core) beyond which Sen2Cor would say "high probability".
HIGH_PROBABILITY_DEPTH = 0.3
CIRRUS_PROBABILITY = 0.3
CIRRUS_OPACITY = (0.08, 0.2)
SHADOW_OFFSET_PX = (3, 9)
SHADOW_DARKENING = (0.3, 0.5)
# Share of the ring of pixels around clouds that the mask misses: still hazy, yet labelled vegetation.
MASK_FAILURE_FRACTION = 0.03
MASK_FAILURE_OPACITY = (0.08, 0.25)


def add_clouds(
    refl: Reflectance, scl: np.ndarray, rng: np.random.Generator, resolution: float, *, overcast: bool
) -> None:
    """Cover part (or, if overcast, all) of the scene with clouds, cirrus and shadows; update SCL to match."""
    shape = scl.shape
    brightness = rng.uniform(*CLOUD_BRIGHTNESS)
    sigma_px = rng.uniform(*BLOB_SCALE_M) / resolution
    field = smooth_field(rng, shape, sigma_px)
    if overcast:
        cloud = np.ones(shape, dtype=bool)
        depth = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    else:
        threshold = np.quantile(field, 1.0 - rng.uniform(*COVER_FRACTION))
        cloud = field > threshold
        depth = np.clip((field - threshold) / max(float(field.max() - threshold), 1e-6), 0.0, 1.0)
    high = cloud & (depth > HIGH_PROBABILITY_DEPTH)
    # Thin towards the edges, opaque in the core.
    opacity = np.where(cloud, np.clip(0.7 + depth, 0.7, 1.0), 0.0).astype(np.float32)

    cirrus = np.zeros(shape, dtype=bool)
    if not overcast and rng.random() < CIRRUS_PROBABILITY:
        cirrus_field = smooth_field(rng, shape, 2 * sigma_px)
        cirrus = (cirrus_field > np.quantile(cirrus_field, rng.uniform(0.5, 0.9))) & ~cloud
        opacity[cirrus] = rng.uniform(*CIRRUS_OPACITY)

    offset = int(rng.integers(*SHADOW_OFFSET_PX))
    # Sun in the south-east at overpass time: shadows fall north-west of the clouds.
    shadow = shift_mask(cloud, -offset, -(offset * 2) // 3) & ~cloud & ~cirrus
    darkening = np.float32(rng.uniform(*SHADOW_DARKENING))

    ring = dilate(cloud) & ~cloud & ~shadow & ~cirrus
    missed = ring & (rng.random(shape) < MASK_FAILURE_FRACTION)
    opacity[missed] = rng.uniform(*MASK_FAILURE_OPACITY, size=int(missed.sum()))

    for key in REFLECTANCE_KEYS:
        band = refl[key]
        band[shadow] *= darkening
        band += opacity * (brightness * CLOUD_COLOUR[key] - band)

    scl[shadow] = SCL.CLOUD_SHADOW
    scl[cirrus] = SCL.THIN_CIRRUS
    scl[cloud] = SCL.CLOUD_MEDIUM
    scl[high] = SCL.CLOUD_HIGH
    scl[missed] = SCL.VEGETATION
