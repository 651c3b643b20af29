"""Clear-cuts: placing non-overlapping polygons inside forest, and their effect on reflectance."""

from __future__ import annotations

import datetime
import logging

import numpy as np
import shapely
import shapely.affinity
from rasterio.features import rasterize

from scheduler.demo.bands import REFLECTANCE_KEYS
from scheduler.demo.events import Event, effect
from scheduler.demo.grid import Grid
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import MIN_POST_EVENT_DAYS, DemoSpec
from scheduler.demo.surface import Endmember, Reflectance, mix, seasonality

logger = logging.getLogger(__name__)

KIND = "clear-cut"
AREA_HA = (0.5, 10.0)
MIN_PIXELS = 6
MAX_ATTEMPTS = 400

# Bare soil with slash right after the cut (NDVI ~0.23), and the young regrowth it slowly turns into.
SLASH: Endmember = {"green": 0.075, "red": 0.10, "nir08": 0.16, "swir16": 0.28}
REGROWTH: Endmember = {"green": 0.06, "red": 0.04, "nir08": 0.33, "swir16": 0.17}
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
    dates = _event_dates(rng, spec)
    occupied = ~forest
    events: list[Event] = []
    px_area_ha = grid.resolution**2 / 1e4
    max_px = AREA_HA[1] / px_area_ha
    for k in range(spec.n_clearcuts):
        for attempt in range(MAX_ATTEMPTS):
            # Shrink the size range when big patches keep failing to fit.
            upper = max(max_px / 2 ** (attempt // 50), AREA_HA[0] / px_area_ha)
            area_px = np.exp(rng.uniform(np.log(AREA_HA[0] / px_area_ha), np.log(upper)))
            polygon = _random_polygon(rng, grid, area_px)
            if polygon is None:
                continue
            inside = rasterize([(polygon, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8)
            # Keep a one-pixel margin of intact forest around every cut, so cuts never touch.
            footprint = rasterize(
                [(polygon.buffer(grid.resolution), 1)],
                out_shape=grid.shape,
                transform=grid.transform,
                all_touched=True,
                dtype=np.uint8,
            ).astype(bool)
            if inside.sum() < MIN_PIXELS or (footprint & occupied).any():
                continue
            occupied |= footprint
            rows, cols = np.nonzero(inside)
            event = Event(
                id=f"clearcut-{k + 1:03d}",
                kind=KIND,
                date=dates[k],
                polygon=polygon,
                rows=rows,
                cols=cols,
                pixel_variation=rng.standard_normal(rows.size).astype(np.float32),
            )
            events.append(event)
            break
        else:
            raise ValueError(f"could not place clear-cut {k + 1} of {spec.n_clearcuts}: not enough free forest")
    logger.debug("planted %d clear-cuts", len(events))
    return events


def _event_dates(rng: np.random.Generator, spec: DemoSpec) -> list[datetime.date]:
    """One date per event, stratified so they spread evenly over [disturbance_start, end - 60 days]."""
    n = spec.n_clearcuts
    first = spec.disturbance_start
    span = (spec.end - datetime.timedelta(days=MIN_POST_EVENT_DAYS) - first).days
    offsets = np.floor((np.arange(n) + rng.random(n)) / max(n, 1) * (span + 1)).astype(int)
    # Shuffle so the first (hardest to place, largest-range) polygons are not always the earliest.
    return [first + datetime.timedelta(days=int(d)) for d in rng.permutation(offsets)]


def _random_polygon(rng: np.random.Generator, grid: Grid, area_px: float) -> shapely.Polygon | None:
    """Draw a rotated rectangle or irregular quadrilateral of about `area_px` pixels, in native coordinates."""
    res = grid.resolution
    if rng.random() < 0.5:
        aspect = rng.uniform(1.0, 2.5)
        half_w, half_h = np.sqrt(area_px * aspect) / 2, np.sqrt(area_px / aspect) / 2
        shape = shapely.box(-half_w, -half_h, half_w, half_h)
    else:
        angles = np.deg2rad(45.0 + 90.0 * np.arange(4) + rng.uniform(-25, 25, 4))
        radii = rng.uniform(0.7, 1.3, 4)
        shape = shapely.Polygon(np.column_stack([radii * np.cos(angles), radii * np.sin(angles)]))
        factor = np.sqrt(area_px / shape.area)
        shape = shapely.affinity.scale(shape, factor, factor, origin=(0, 0))
    shape = shapely.affinity.rotate(shape, rng.uniform(0, 180), origin=(0, 0))
    minx, miny, maxx, maxy = shape.bounds
    # Centre (in pixel units, y down) such that the whole polygon stays one pixel inside the grid.
    lo_c, hi_c = 1 - minx, grid.width - 1 - maxx
    lo_r, hi_r = 1 + maxy, grid.height - 1 + miny
    if lo_c >= hi_c or lo_r >= hi_r:
        return None
    col, row = rng.uniform(lo_c, hi_c), rng.uniform(lo_r, hi_r)
    # Pixel units -> native CRS: x grows with columns, y shrinks with rows.
    native = shapely.affinity.affine_transform(
        shape, [res, 0, 0, res, grid.origin_x + col * res, grid.origin_y - row * res]
    )
    return shapely.set_precision(native, res / 1000)
