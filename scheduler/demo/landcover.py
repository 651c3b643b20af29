"""Static land cover of the demo scene: forest, grassland and crop parcels, water, with per-pixel traits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from scheduler.demo.fields import smooth_field
from scheduler.demo.grid import Grid
from scheduler.demo.rng import Stream, stream_rng

WATER_FRACTION = 0.05
FOREST_FRACTION = 0.70
# Typical size of forest/open-land patches, and of agricultural parcels, in metres.
PATCH_SCALE_M = 600.0
PARCEL_SIZE_M = (200.0, 320.0)


class Cover(IntEnum):
    """Land-cover classes; the values are what the land-cover array holds."""

    FOREST = 1
    GRASS = 2
    WINTER_CROP = 3
    SUMMER_CROP = 4
    WATER = 5


OPEN_LAND = (Cover.GRASS, Cover.WINTER_CROP, Cover.SUMMER_CROP)
OPEN_LAND_SHARES = (0.35, 0.35, 0.30)


@dataclass(frozen=True)
class LandCover:
    """Per-pixel class and the traits the reflectance model needs (all arrays of the grid's shape)."""

    cover: np.ndarray
    forest_ndvi: np.ndarray  # annual mean NDVI of the canopy
    forest_ndvi_amplitude: np.ndarray  # half the summer-winter NDVI difference (more deciduous = larger)
    forest_nir: np.ndarray
    forest_green: np.ndarray
    forest_swir: np.ndarray
    parcel_shift_days: np.ndarray  # sowing/harvest shift of the parcel the pixel belongs to
    parcel_peak_cover: np.ndarray  # maximum green fraction reached by the parcel
    soil_brightness: np.ndarray

    @property
    def forest(self) -> np.ndarray:
        """Boolean forest mask."""
        return self.cover == Cover.FOREST

    @property
    def water(self) -> np.ndarray:
        """Boolean water mask."""
        return self.cover == Cover.WATER


def make_landcover(seed: int, grid: Grid) -> LandCover:
    """Draw the land cover of the scene from the seed."""
    rng = stream_rng(seed, Stream.LANDCOVER)
    shape = grid.shape
    # Small demo grids still get several patches rather than one blob.
    patch_px = min(PATCH_SCALE_M / grid.resolution, min(shape) / 6)
    relief = smooth_field(rng, shape, patch_px)
    water_limit, open_limit = np.quantile(relief, [WATER_FRACTION, 1.0 - FOREST_FRACTION])

    parcel_id, n_parcels = _parcels(rng, grid)
    parcel_type = rng.choice(np.array(OPEN_LAND, dtype=np.uint8), size=n_parcels, p=OPEN_LAND_SHARES)
    cover = np.full(shape, Cover.FOREST, dtype=np.uint8)
    open_land = relief < open_limit
    cover[open_land] = parcel_type[parcel_id[open_land]]
    cover[relief < water_limit] = Cover.WATER

    def trait(mean: float, smooth_sd: float, pixel_sd: float, scale_px: float) -> np.ndarray:
        """Spatially correlated trait plus pixel-level scatter."""
        value = mean + smooth_sd * smooth_field(rng, shape, scale_px) + pixel_sd * rng.standard_normal(shape)
        return value.astype(np.float32)

    stand_px = max(patch_px / 3, 1.0)
    return LandCover(
        cover=cover,
        forest_ndvi=trait(0.81, 0.012, 0.005, stand_px),
        forest_ndvi_amplitude=np.clip(trait(0.04, 0.01, 0.0, stand_px), 0.02, 0.06),
        forest_nir=trait(0.28, 0.015, 0.005, stand_px),
        forest_green=trait(0.048, 0.003, 0.001, stand_px),
        forest_swir=trait(0.172, 0.008, 0.003, stand_px),
        parcel_shift_days=rng.uniform(-12, 12, n_parcels).astype(np.float32)[parcel_id],
        parcel_peak_cover=rng.uniform(0.8, 0.95, n_parcels).astype(np.float32)[parcel_id],
        soil_brightness=rng.uniform(0.85, 1.15, n_parcels).astype(np.float32)[parcel_id],
    )


def _parcels(rng: np.random.Generator, grid: Grid) -> tuple[np.ndarray, int]:
    """Parcel id per pixel from a randomly rotated rectangular field pattern."""
    theta = rng.uniform(0, np.pi / 2)
    size_u, size_v = rng.uniform(*PARCEL_SIZE_M, size=2) / grid.resolution
    rows, cols = np.indices(grid.shape, dtype=np.float64)
    iu = np.floor((cols * np.cos(theta) + rows * np.sin(theta)) / size_u).astype(np.int64)
    iv = np.floor((-cols * np.sin(theta) + rows * np.cos(theta)) / size_v).astype(np.int64)
    iu -= iu.min()
    iv -= iv.min()
    parcel_id = iu * (iv.max() + 1) + iv
    return parcel_id, int(parcel_id.max()) + 1
