"""Haze: thin cloud the scene classification misses (SCL stays clear) over part of the scene for 2-6 weeks.

Not a disturbance: it depresses forest NDVI by 0.1-0.3 for several consecutive acquisitions, exactly the kind of
false alarm a monitor must not raise.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import replace

import numpy as np

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import blob, event_window, mask_parts, pixel_geometry
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Endmember, Reflectance

logger = logging.getLogger(__name__)

KIND = "haze"
CLEARCUTS_PER_EPISODE = 4
AREA_FRACTION = (0.15, 0.4)
REGION_SCALE = 0.2
MIN_PIXELS = 16
DURATION_DAYS = (14, 42)
# Forest NDVI depression: DROP[0] at the haze's edge, the episode's magnitude (up to DROP[1]) at its core.
DROP = (0.1, 0.3)
# Targets stay this far inside DROP: the opacity is set on a typical canopy and stands differ by up to ~0.01.
DROP_MARGIN = 0.015
# Haze thickens and thins from one acquisition to the next.
WOBBLE = 0.15
WOBBLE_PERIOD_DAYS = 9.0
# Bluish-white aerosol: bright in the visible, about canopy-bright in NIR, faint in the SWIR.
HAZE_COLOUR: Endmember = {"green": 0.33, "red": 0.30, "nir08": 0.28, "swir16": 0.21, "swir22": 0.16}
# The canopy the opacity is computed for (mean forest NDVI 0.8).
REFERENCE_FOREST = {"red": 0.031, "nir08": 0.28}
# Smoke of the burning season (the hard suite): thinner, wider, from nothing at its edge to SMOKE_DROP at its core.
SMOKE = "smoke"
SMOKE_AREA_FRACTION = (0.2, 0.45)
SMOKE_DROP = (0.03, 0.08)
SMOKE_DURATION_DAYS = (10, 30)
SMOKE_GAP_DAYS = (5, 20)
# The burning season: first smoke between these days of the year (August).
SMOKE_ONSET = (213, 243)


@effect(KIND)
def haze(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Blend every band towards the haze colour with the opacity that depresses canopy NDVI by the pixel's drop."""
    days = (when - event.date).days
    if days >= event.duration_days:
        return
    weight = event.pixel_weight if event.pixel_weight is not None else 1.0
    wobble = 1.0 + WOBBLE * math.sin(2 * math.pi * days / WOBBLE_PERIOD_DAYS)
    if event.detail == SMOKE:
        # Smoke thins out to nothing at its edge.
        opacity = opacity_for(np.clip(event.magnitude * weight * wobble, 0.0, DROP[1] - DROP_MARGIN))
    else:
        drop = (DROP[0] + (event.magnitude - DROP[0]) * weight) * wobble
        opacity = opacity_for(np.clip(drop, DROP[0] + DROP_MARGIN, DROP[1] - DROP_MARGIN))
    for key in REFLECTANCE_KEYS:
        band = refl[key][event.rows, event.cols]
        refl[key][event.rows, event.cols] = band + opacity * (HAZE_COLOUR[key] - band)


def opacity_for(drop: np.ndarray) -> np.ndarray:
    """Haze opacity that lowers the NDVI of the reference canopy by `drop`."""
    red, nir = REFERENCE_FOREST["red"], REFERENCE_FOREST["nir08"]
    d_red, d_nir = HAZE_COLOUR["red"] - red, HAZE_COLOUR["nir08"] - nir
    target = (nir - red) / (nir + red) - drop
    # Solve (nir - red + o (d_nir - d_red)) / (nir + red + o (d_nir + d_red)) = target for the opacity o.
    return ((nir - red) - target * (nir + red)) / (target * (d_nir + d_red) - (d_nir - d_red))


@planner("haze")
def plan_haze(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """A few haze episodes, one region each, that never overlap in time (so their effects never add up)."""
    rng = stream_rng(spec.seed, Stream.HAZE)
    n = math.ceil(spec.n_clearcuts / CLEARCUTS_PER_EPISODE)
    first, last = event_window(spec)
    span = (last - first).days
    durations = rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1, n)
    if durations.sum() > span:
        # Short windows: shorten the episodes so they still fit one after another.
        durations = np.maximum(durations * span // durations.sum(), 1)
    # Random gaps between consecutive episodes: start k = first + gap k + the durations of the episodes before it.
    gaps = np.sort(rng.integers(0, span - durations.sum() + 1, n))
    starts = [first + datetime.timedelta(days=int(g + durations[:k].sum())) for k, g in enumerate(gaps)]
    events = []
    for k, start in enumerate(starts):
        mask, depth = blob(rng, grid, REGION_SCALE * min(grid.shape), rng.uniform(*AREA_FRACTION))
        parts = mask_parts(mask, grid, MIN_PIXELS)
        if not parts:
            continue
        geometry, inside = pixel_geometry(parts, grid)
        event = Event.from_pixels(f"{KIND}-{k + 1:03d}", KIND, start, geometry, inside, rng)
        # Drawn after the per-pixel variation, as it always was, so the archive stays the same.
        magnitude = float(rng.uniform(DROP[0] + 0.05, DROP[1]))
        events.append(
            replace(
                event,
                end=start + datetime.timedelta(days=int(durations[k])),
                magnitude=magnitude,
                pixel_weight=depth[event.rows, event.cols],
            )
        )
    logger.debug("planted %d haze episodes", len(events))
    return events


def place_smoke(rng: np.random.Generator, spec: DemoSpec, grid: Grid, n: int) -> list[Event]:
    """N smoke episodes one after another from August of the first burning season in the event window."""
    first, last = event_window(spec)
    year = first.year if first.timetuple().tm_yday <= SMOKE_ONSET[0] else first.year + 1
    start = datetime.date(year, 1, 1) + datetime.timedelta(days=int(rng.integers(*SMOKE_ONSET)) - 1)
    events = []
    for k in range(n):
        duration = int(rng.integers(SMOKE_DURATION_DAYS[0], SMOKE_DURATION_DAYS[1] + 1))
        if start + datetime.timedelta(days=duration) > last:
            break
        mask, depth = blob(rng, grid, REGION_SCALE * min(grid.shape), rng.uniform(*SMOKE_AREA_FRACTION))
        parts = mask_parts(mask, grid, MIN_PIXELS)
        if parts:
            geometry, inside = pixel_geometry(parts, grid)
            event = Event.from_pixels(f"{KIND}-{k + 1:03d}", KIND, start, geometry, inside, rng, detail=SMOKE)
            end = start + datetime.timedelta(days=duration)
            weight = depth[event.rows, event.cols]
            events.append(replace(event, end=end, magnitude=float(rng.uniform(*SMOKE_DROP)), pixel_weight=weight))
        start += datetime.timedelta(days=duration + int(rng.integers(SMOKE_GAP_DAYS[0], SMOKE_GAP_DAYS[1] + 1)))
    logger.debug("planted %d smoke episodes", len(events))
    return events
