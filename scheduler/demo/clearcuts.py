"""Clear-cuts: placing non-overlapping polygons inside forest, and their effect on reflectance."""

from __future__ import annotations

import datetime
import logging

import numpy as np

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import event_window, place_polygon, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Endmember, Reflectance, mix, seasonality

logger = logging.getLogger(__name__)

KIND = "clear-cut"
AREA_HA = (0.5, 10.0)
MIN_PIXELS = 6

# Bare soil with slash right after the cut (NDVI ~0.23), and the young regrowth it slowly turns into.
SLASH: Endmember = {"green": 0.075, "red": 0.10, "nir08": 0.16, "swir16": 0.28, "swir22": 0.24}
REGROWTH: Endmember = {"green": 0.06, "red": 0.04, "nir08": 0.33, "swir16": 0.17, "swir22": 0.085}
# Fraction of regrowth cover gained per year: NDVI rises by roughly 0.08-0.1 a year.
REGROWTH_RATE = 0.12


@effect(KIND)
def clear_cut(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Replace the canopy by slash, slowly greening up (faster in summer)."""
    var = event.pixel_variation
    cover = REGROWTH_RATE * (1.0 + 0.2 * var) * max(event.years_since(when), 0.0)
    cover = np.clip(cover * (1.0 + 0.25 * seasonality(when)), 0.0, 1.0)
    slash = {k: SLASH[k] * (1.0 + 0.05 * var) for k in REFLECTANCE_KEYS}
    patch = mix(slash, REGROWTH, cover)
    for key in REFLECTANCE_KEYS:
        refl[key][event.rows, event.cols] = patch[key]


def plan_clearcuts(spec: DemoSpec, grid: Grid, forest: np.ndarray) -> list[Event]:
    """Place spec.n_clearcuts non-overlapping clear-cuts fully inside forest, dated across the disturbance window."""
    rng = stream_rng(spec.seed, Stream.EVENTS)
    dates = spread_dates(rng, *event_window(spec), spec.n_clearcuts)
    events = place_clearcuts(rng, grid, ~forest, dates, AREA_HA, MIN_PIXELS)
    logger.debug("planted %d clear-cuts", len(events))
    return events


def place_clearcuts(
    rng: np.random.Generator,
    grid: Grid,
    occupied: np.ndarray,
    dates: list[datetime.date],
    area_ha: tuple[float, float],
    min_pixels: int,
    first_number: int = 1,
) -> list[Event]:
    """One clear-cut per date on free pixels; marks each one's footprint in `occupied` (in place)."""
    events: list[Event] = []
    for k, date in enumerate(dates):
        placed = place_polygon(rng, grid, occupied, area_ha, min_pixels)
        if placed is None:
            raise ValueError(f"could not place clear-cut {k + 1} of {len(dates)}: not enough free forest")
        polygon, inside, footprint = placed
        occupied |= footprint
        number = first_number + k
        events.append(Event.from_pixels(f"clearcut-{number:03d}", KIND, date, polygon, inside, rng))
    return events


@planner("clear-cut")
def plan_clearcut_scenario(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """The default scenario: clear-cuts only."""
    return plan_clearcuts(spec, grid, landcover.forest)
