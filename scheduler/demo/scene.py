"""Render one acquisition: surface, disturbances, noise, clouds, orbit-edge nodata, quantised to L2A DNs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.demo import scl as SCL
from scheduler.demo.bands import OFFSET, REFLECTANCE_KEYS, SCALE
from scheduler.demo.clouds import add_clouds
from scheduler.demo.events import Event, apply_events
from scheduler.demo.landcover import LandCover
from scheduler.demo.leaks import add_leaked_clouds
from scheduler.demo.optics import blur_and_shift
from scheduler.demo.rng import Nuisance, Stream, acquisition_rng, band_noise_rng, nuisance_rng, stream_rng
from scheduler.demo.schedule import Acquisition
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import surface_reflectance

# Per-pixel radiometric noise (reflectance units); red dominates NDVI noise: ~0.014 NDVI over forest.
NOISE_SD = {"green": 0.002, "red": 0.0025, "nir08": 0.005, "swir16": 0.004, "swir22": 0.004}
# Bands whose noise comes from the acquisition stream, in this order. Bands added later draw from their own stream
# (keyed by S2 band number): adding one then leaves every earlier band's pixels, and the clouds, as they were.
SHARED_NOISE_KEYS = ("green", "red", "nir08", "swir16")
LATE_BAND_NUMBERS = {"swir22": 12}
# Scene-wide residual of the atmospheric correction.
SCENE_OFFSET_SD = 0.001
EDGE_STRIP_PROBABILITY = 0.2
EDGE_STRIP_COLUMNS = (2, 9)


@dataclass(frozen=True)
class SceneContext:
    """Everything static that all acquisitions share."""

    spec: DemoSpec
    landcover: LandCover
    events: list[Event]
    overcast: frozenset[int]  # acquisition indices that are 100 % cloudy


@dataclass(frozen=True)
class Scene:
    """One rendered acquisition: uint16 DNs per reflectance asset, uint8 SCL, and its eo:cloud_cover."""

    bands: dict[str, np.ndarray]
    scl: np.ndarray
    cloud_cover: float
    # Pixels under a cloud or halo that SCL labels clear (None unless the spec leaks clouds).
    leaked: np.ndarray | None = None


def render_scene(ctx: SceneContext, acq: Acquisition) -> Scene:
    """Simulate the L2A product of one acquisition."""
    spec = ctx.spec
    rng = acquisition_rng(spec.seed, acq.index)
    when = acq.datetime.date()
    refl = surface_reflectance(ctx.landcover, when)
    apply_events(ctx.events, refl, when)
    if spec.psf_sigma_px or spec.jitter_px:
        blur_and_shift(refl, nuisance_rng(spec.seed, acq.index, Nuisance.OPTICS), spec.psf_sigma_px, spec.jitter_px)
    shape = ctx.landcover.cover.shape
    for key in SHARED_NOISE_KEYS:
        refl[key] += rng.normal(0.0, NOISE_SD[key], shape).astype(np.float32) + rng.normal(0.0, SCENE_OFFSET_SD)
    for key, number in LATE_BAND_NUMBERS.items():
        noise_rng = band_noise_rng(spec.seed, acq.index, number)
        noise = noise_rng.normal(0.0, NOISE_SD[key], shape).astype(np.float32)
        refl[key] += noise + noise_rng.normal(0.0, SCENE_OFFSET_SD)
    scl = SCL.clear_sky_scl(refl["red"], refl["nir08"], ctx.landcover.water)

    overcast = acq.index in ctx.overcast
    if overcast or rng.random() < spec.cloud_probability:
        add_clouds(refl, scl, rng, spec.resolution, overcast=overcast)
    leaked = None
    if spec.leaked_cloud_fraction:
        leak_rng = nuisance_rng(spec.seed, acq.index, Nuisance.LEAKED_CLOUDS)
        leaked = add_leaked_clouds(refl, scl, leak_rng, spec.resolution, spec.leaked_cloud_fraction)

    bands = {key: to_dn(refl[key]) for key in REFLECTANCE_KEYS}
    if rng.random() < EDGE_STRIP_PROBABILITY:
        # Orbit edge: the swath does not reach the left-most columns.
        columns = min(int(rng.integers(*EDGE_STRIP_COLUMNS)), shape[1] // 4)
        for band in bands.values():
            band[:, :columns] = 0
        scl[:, :columns] = SCL.NO_DATA
    if leaked is not None:
        leaked &= scl != SCL.NO_DATA
    return Scene(bands=bands, scl=scl, cloud_cover=SCL.cloud_cover_percent(scl), leaked=leaked)


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance to L2A digital numbers; 0 is reserved for nodata."""
    dn = np.rint((reflectance - OFFSET) / SCALE)
    return np.clip(dn, 1, np.iinfo(np.uint16).max).astype(np.uint16)


def choose_overcast(spec: DemoSpec, indices: list[int]) -> frozenset[int]:
    """About 1 % (at least one) of the acquisitions are completely cloudy, unless clouds are off."""
    if not indices or spec.cloud_probability <= 0:
        return frozenset()
    n = max(1, round(0.01 * len(indices)))
    chosen = stream_rng(spec.seed, Stream.OVERCAST).choice(indices, size=n, replace=False)
    return frozenset(int(i) for i in chosen)
