"""Fire: irregular burn scars in forest, charred (NBR strongly negative) and greening up only slowly."""

from __future__ import annotations

import datetime
import logging
import math

import numpy as np

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.clearcuts import REGROWTH
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.fields import dilate, smooth_field
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import Geometry, event_window, mask_parts, pixel_geometry, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Endmember, Reflectance, mix, seasonality

logger = logging.getLogger(__name__)

KIND = "fire"
# Scars are few but large: one per four clear-cuts the default would have.
CLEARCUTS_PER_FIRE = 4
AREA_HA = (5.0, 60.0)
# All scars together never take more than this share of the forest, so small test grids still fit them.
MAX_FOREST_SHARE = 0.25
MIN_PIXELS = 20
MAX_ATTEMPTS = 100
# How ragged the outline is: weight of the smooth random field against the distance from the ignition point.
RAGGEDNESS = 0.5

# Char and ash: dark in NIR, bright in both SWIR bands (NDVI ~0.17, NBR ~ -0.33).
CHAR: Endmember = {"green": 0.045, "red": 0.075, "nir08": 0.11, "swir16": 0.25, "swir22": 0.22}
NDVI_RANGE = (0.10, 0.25)
# Burnt soils green up half as fast as a replanted clear-cut.
REGROWTH_RATE = 0.06


@effect(KIND)
def burn(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Replace the canopy by char of varying severity, slowly covered by regrowth."""
    var = event.pixel_variation
    # Burn severity varies within a scar: the lowest-NDVI pixels are also the darkest in NIR and brightest in SWIR.
    ndvi = np.clip(np.mean(NDVI_RANGE) + 0.03 * var, *NDVI_RANGE)
    nir = CHAR["nir08"] * (1.0 + 0.08 * var)
    char = {
        "green": CHAR["green"] * (1.0 + 0.05 * var),
        "red": nir * (1.0 - ndvi) / (1.0 + ndvi),
        "nir08": nir,
        "swir16": CHAR["swir16"] * (1.0 - 0.05 * var),
        "swir22": CHAR["swir22"] * (1.0 - 0.05 * var),
    }
    cover = REGROWTH_RATE * (1.0 + 0.2 * var) * max(event.years_since(when), 0.0)
    cover = np.clip(cover * (1.0 + 0.25 * seasonality(when)), 0.0, 1.0)
    patch = mix(char, REGROWTH, cover)
    for key in REFLECTANCE_KEYS:
        refl[key][event.rows, event.cols] = patch[key]


@planner("fire")
def plan_fires(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """A few irregular, non-touching burn scars inside forest, dated across the disturbance window."""
    rng = stream_rng(spec.seed, Stream.FIRE)
    n = math.ceil(spec.n_clearcuts / CLEARCUTS_PER_FIRE)
    dates = spread_dates(rng, *event_window(spec), n)
    events = place_fires(rng, grid, landcover.forest, ~landcover.forest, dates)
    logger.debug("planted %d burn scars", len(events))
    return events


def place_fires(
    rng: np.random.Generator, grid: Grid, forest: np.ndarray, occupied: np.ndarray, dates: list[datetime.date]
) -> list[Event]:
    """One burn scar per date on free forest; marks each scar and its margin in `occupied` (in place)."""
    n = len(dates)
    px_area_ha = grid.resolution**2 / 1e4
    max_px = min(AREA_HA[1] / px_area_ha, MAX_FOREST_SHARE * forest.sum() / max(n, 1))
    min_px = max(min(AREA_HA[0] / px_area_ha, max_px / 3), MIN_PIXELS)
    events = []
    for k in range(n):
        for _ in range(MAX_ATTEMPTS):
            scar = _burn_scar(rng, grid, occupied, np.exp(rng.uniform(np.log(min_px), np.log(max(max_px, min_px)))))
            if scar is not None:
                break
        else:
            raise ValueError(f"could not place burn scar {k + 1} of {n}: not enough free forest")
        polygon, inside = scar
        occupied |= dilate(inside)
        events.append(Event.from_pixels(f"{KIND}-{k + 1:03d}", KIND, dates[k], polygon, inside, rng))
    return events


def _burn_scar(
    rng: np.random.Generator, grid: Grid, occupied: np.ndarray, target_px: float
) -> tuple[Geometry, np.ndarray] | None:
    """Burn about `target_px` free pixels around a random ignition point; None if too little of it burns."""
    free = np.flatnonzero(~occupied)
    if free.size < MIN_PIXELS:
        return None
    r0, c0 = np.unravel_index(rng.choice(free), grid.shape)
    radius = math.sqrt(target_px / math.pi)
    rows, cols = np.indices(grid.shape)
    # Fire spreads unevenly: distance from ignition plus a smooth random field gives a ragged outline.
    score = np.hypot(rows - r0, cols - c0) / radius + RAGGEDNESS * smooth_field(rng, grid.shape, radius / 2)
    score[occupied] = np.inf
    n_burnt = min(int(target_px), free.size - 1)
    burnt = score < np.partition(score.ravel(), n_burnt)[n_burnt]
    parts = mask_parts(burnt, grid, MIN_PIXELS)
    if not parts:
        return None
    # Fire stops at fields and earlier scars; keep the largest connected burnt area.
    largest = max(parts, key=lambda part: part.area)
    if largest.area / grid.resolution**2 < 0.5 * target_px:
        return None
    return pixel_geometry([largest], grid)
