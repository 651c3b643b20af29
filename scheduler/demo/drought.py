"""Drought: one summer in which forest NDVI dips by 0.05-0.12 over large areas for 2-4 months; not a disturbance."""

from __future__ import annotations

import datetime
import logging
from dataclasses import replace

import numpy as np
from rasterio.features import rasterize

from scheduler.demo.canopy import lower_ndvi
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.fields import smooth_field
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import blob, event_window, mask_parts, pixel_geometry
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Reflectance

logger = logging.getLogger(__name__)

KIND = "drought"
# Share of the scene inside drought regions, and their smoothness relative to the grid's shorter side.
AREA_FRACTION = (0.3, 0.5)
REGION_SCALE = 0.25
# Regions smaller than this share of the scene are dropped, as are forest fragments below MIN_PIXELS.
MIN_REGION_SHARE = 0.02
MIN_PIXELS = 4
DROP = (0.05, 0.12)
DURATION_DAYS = (60, 122)
# Stress builds up and eases off over two weeks, so NDVI is at its low for most of the drought.
RAMP_DAYS = 14
# Onset between early June and mid-July; regions start up to ONSET_JITTER_DAYS apart.
ONSET_SEASON = ((6, 1), (7, 15))
ONSET_JITTER_DAYS = 10
# Water stress: leaves wilt (NIR down) and dry out (SWIR up).
NIR_LOSS = 0.5
SWIR_GAIN = 0.3


@effect(KIND)
def drought_stress(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Lower forest NDVI by the region's drop while the drought lasts, ramping in and out."""
    days = (when - event.date).days
    profile = min(1.0, days / RAMP_DAYS, (event.duration_days - days) / RAMP_DAYS)
    if profile <= 0:
        return
    if event.pixel_weight is not None:
        # Graded (the hard suite): the full drop at the region's core, next to none at its edge.
        drop = event.magnitude * event.pixel_weight * (1.0 + 0.1 * event.pixel_variation) * profile
    else:
        drop = np.clip(event.magnitude * (1.0 + 0.1 * event.pixel_variation), *DROP) * profile
    lower_ndvi(refl, event.rows, event.cols, drop, nir_loss=NIR_LOSS, swir_gain=SWIR_GAIN)


@planner("drought")
def plan_drought(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """One drought summer; each large region it hits is one event over that region's forest."""
    rng = stream_rng(spec.seed, Stream.DROUGHT)
    first, last = event_window(spec)
    onset = _onset(rng, spec)
    mask, _ = blob(rng, grid, REGION_SCALE * min(grid.shape), rng.uniform(*AREA_FRACTION))
    regions = mask_parts(mask, grid, int(MIN_REGION_SHARE * mask.size))
    events = []
    for region in regions:
        inside = rasterize([(region, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8)
        parts = mask_parts(inside.astype(bool) & landcover.forest, grid, MIN_PIXELS)
        if not parts:
            continue
        geometry, affected = pixel_geometry(parts, grid)
        jitter = int(rng.integers(-ONSET_JITTER_DAYS, ONSET_JITTER_DAYS + 1))
        start = min(max(onset + datetime.timedelta(days=jitter), first), last)
        duration = int(rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1))
        event = Event.from_pixels(f"{KIND}-{len(events) + 1:03d}", KIND, start, geometry, affected, rng)
        # Drawn after the per-pixel variation, as it always was, so the archive stays the same.
        magnitude = float(rng.uniform(*DROP))
        events.append(replace(event, end=start + datetime.timedelta(days=duration), magnitude=magnitude))
    logger.debug("planted %d drought regions", len(events))
    return events


def place_drought(
    rng: np.random.Generator, spec: DemoSpec, grid: Grid, allowed: np.ndarray, share: float, drop: tuple[float, float]
) -> list[Event]:
    """One graded drought over about `share` of the `allowed` pixels: its core's drop drawn from `drop`."""
    onset = _onset(rng, spec)
    # Thresholded on the allowed pixels only, so the drought covers `share` of them whatever the land cover.
    field = smooth_field(rng, grid.shape, REGION_SCALE * min(grid.shape))
    threshold = float(np.quantile(field[allowed], 1.0 - share)) if allowed.any() else np.inf
    mask = allowed & (field > threshold)
    top = float(field[mask].max()) if mask.any() else threshold + 1.0
    depth = np.clip((field - threshold) / max(top - threshold, 1e-6), 0.0, 1.0)
    parts = mask_parts(mask, grid, MIN_PIXELS)
    if not parts:
        return []
    geometry, affected = pixel_geometry(parts, grid)
    duration = int(rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1))
    event = Event.from_pixels(f"{KIND}-001", KIND, onset, geometry, affected, rng)
    end = onset + datetime.timedelta(days=duration)
    weight = depth[event.rows, event.cols]
    return [replace(event, end=end, magnitude=float(rng.uniform(*drop)), pixel_weight=weight)]


def _onset(rng: np.random.Generator, spec: DemoSpec) -> datetime.date:
    """Start of the drought: early summer of the first year that allows it, ideally leaving room to recover."""
    first, last = event_window(spec)
    # The archive should show the return to normal: end the drought before the archive ends where possible.
    latest = min(last, spec.end - datetime.timedelta(days=DURATION_DAYS[1] + ONSET_JITTER_DAYS))
    if latest < first:
        latest = last
    (m0, d0), (m1, d1) = ONSET_SEASON
    for year in range(first.year, latest.year + 1):
        lo, hi = max(datetime.date(year, m0, d0), first), min(datetime.date(year, m1, d1), latest)
        if lo <= hi:
            return lo + datetime.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))
    # No summer in the window (short test archives): any time will do.
    return first + datetime.timedelta(days=int(rng.integers(0, (latest - first).days + 1)))
