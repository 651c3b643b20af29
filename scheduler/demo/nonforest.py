"""Land-use changes outside the forest mask (grassland ploughed, cropland built over); forest stays untouched."""

from __future__ import annotations

import datetime
import logging

import numpy as np

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import Cover, LandCover
from scheduler.demo.placement import event_window, place_polygon, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import GREEN_CROP, GREEN_FRACTION_CALENDAR, SOIL, Endmember, Reflectance, mix

logger = logging.getLogger(__name__)

KIND = "non-forest-change"
AREA_HA = (0.5, 5.0)
MIN_PIXELS = 6
# Tries on the preferred land cover before falling back to any open land.
PREFERRED_ATTEMPTS = 100
PLOUGHED = "ploughed"
BUILT_UP = "built-up"
CROPS = (Cover.WINTER_CROP, Cover.SUMMER_CROP)
# Where each change preferably happens (it falls back to any open land when that class has no room left).
PREFERRED_COVER = {PLOUGHED: (Cover.GRASS,), BUILT_UP: CROPS}

# Freshly turned soil is moist and dark for a few weeks; after that the field follows a summer-crop calendar.
FRESH_DAYS = 30
FRESH_DARKENING = 0.8
CROP_PEAK_COVER = 0.9
# Construction: bright bare soil turning into roofs and asphalt within half a year.
CONSTRUCTION_YEARS = 0.5
SITE_BRIGHTENING = 1.15
BUILT: Endmember = {"green": 0.13, "red": 0.14, "nir08": 0.17, "swir16": 0.20, "swir22": 0.18}


@effect(KIND)
def change_land_use(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Turn the parcel into a ploughed and re-sown field or a building site, depending on the event's detail."""
    var = event.pixel_variation
    soil = {k: SOIL[k] * (1.0 + 0.05 * var) for k in REFLECTANCE_KEYS}
    days = (when - event.date).days
    if event.detail is not None and event.detail.endswith(PLOUGHED):
        if days < FRESH_DAYS:
            patch = {k: FRESH_DARKENING * soil[k] for k in REFLECTANCE_KEYS}
        else:
            calendar_days, fractions = GREEN_FRACTION_CALENDAR[Cover.SUMMER_CROP]
            doy = when.timetuple().tm_yday
            patch = mix(soil, GREEN_CROP, CROP_PEAK_COVER * float(np.interp(doy, calendar_days, fractions, period=365)))
    else:
        site = {k: SITE_BRIGHTENING * soil[k] for k in REFLECTANCE_KEYS}
        patch = mix(site, BUILT, min(event.years_since(when) / CONSTRUCTION_YEARS, 1.0))
    for key in REFLECTANCE_KEYS:
        refl[key][event.rows, event.cols] = patch[key]


@planner("non-forest")
def plan_non_forest(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """As many land-use changes as there would be clear-cuts, on open land with a margin to forest and water."""
    rng = stream_rng(spec.seed, Stream.NON_FOREST)
    n = spec.n_clearcuts
    dates = spread_dates(rng, *event_window(spec), n)
    occupied = landcover.forest | landcover.water
    events = []
    for k in range(n):
        change = (PLOUGHED, BUILT_UP)[int(rng.integers(2))]
        preferred = np.isin(landcover.cover, PREFERRED_COVER[change])
        placed = place_polygon(
            rng, grid, occupied | ~preferred, AREA_HA, MIN_PIXELS, centred_on_free=True, max_attempts=PREFERRED_ATTEMPTS
        )
        placed = placed or place_polygon(rng, grid, occupied, AREA_HA, MIN_PIXELS, centred_on_free=True)
        if placed is None:
            raise ValueError(f"could not place land-use change {k + 1} of {n}: not enough free open land")
        polygon, inside, footprint = placed
        occupied |= footprint
        rows, cols = np.nonzero(inside)
        # Name what was there before by majority, as the fallback may have put the change on the other class.
        was_crop = np.isin(landcover.cover[rows, cols], CROPS).mean() > 0.5
        detail = f"{'cropland' if was_crop else 'grassland'}-{change}"
        events.append(Event.from_pixels(f"{KIND}-{k + 1:03d}", KIND, dates[k], polygon, inside, rng, detail=detail))
    logger.debug("planted %d land-use changes outside forest", len(events))
    return events
