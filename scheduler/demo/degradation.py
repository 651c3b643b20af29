"""Degradation: forest patches losing canopy gradually (NDVI declining linearly over 6-18 months)."""

from __future__ import annotations

import datetime
import logging
from dataclasses import replace

import numpy as np

from scheduler.demo.canopy import lower_ndvi
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import event_window, place_polygon, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Reflectance

logger = logging.getLogger(__name__)

KIND = "degradation"
# From small thinned stands to large ones, log-uniform.
AREA_HA = (0.3, 20.0)
MIN_PIXELS = 6
DURATION_DAYS = (183, 548)
# Total NDVI decline once the degradation is complete.
TOTAL_DROP = (0.15, 0.35)
NIR_LOSS = 0.3
SWIR_GAIN = 0.25


@effect(KIND)
def degrade(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Thin the canopy linearly from the start date until the total decline is reached, then stay degraded."""
    progress = min((when - event.date).days / event.duration_days, 1.0)
    if progress <= 0:
        return
    total = np.clip(event.magnitude * (1.0 + 0.1 * event.pixel_variation), *TOTAL_DROP)
    lower_ndvi(refl, event.rows, event.cols, total * progress, nir_loss=NIR_LOSS, swir_gain=SWIR_GAIN)


@planner("degradation")
def plan_degradation(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """As many non-overlapping degrading patches as there would be clear-cuts, of varied size and speed."""
    rng = stream_rng(spec.seed, Stream.DEGRADATION)
    n = spec.n_clearcuts
    dates = spread_dates(rng, *event_window(spec), n)
    occupied = ~landcover.forest
    events = []
    for k in range(n):
        placed = place_polygon(rng, grid, occupied, AREA_HA, MIN_PIXELS)
        if placed is None:
            raise ValueError(f"could not place degradation patch {k + 1} of {n}: not enough free forest")
        polygon, inside, footprint = placed
        occupied |= footprint
        duration = int(rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1))
        event = Event.from_pixels(f"{KIND}-{k + 1:03d}", KIND, dates[k], polygon, inside, rng)
        # Drawn after the per-pixel variation, as it always was, so the archive stays the same.
        magnitude = float(rng.uniform(*TOTAL_DROP))
        events.append(replace(event, end=dates[k] + datetime.timedelta(days=duration), magnitude=magnitude))
    logger.debug("planted %d degradation patches", len(events))
    return events
