"""Selective logging: small scattered canopy gaps, opened abruptly and closing again within months."""

from __future__ import annotations

import datetime
import logging

import numpy as np
import shapely

from scheduler.demo.canopy import lower_ndvi
from scheduler.demo.events import Event, effect, planner
from scheduler.demo.fields import dilate
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.placement import event_window, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec
from scheduler.demo.surface import Reflectance

logger = logging.getLogger(__name__)

KIND = "selective-logging"
# Each logging operation (one per clear-cut the default would have) fells a few trees around one spot.
GAPS_PER_OPERATION = (3, 8)
GAP_PIXELS = (1, 6)
OPERATION_RADIUS_M = 150.0
DROP = (0.2, 0.4)
# Side shoots and the understorey close a small gap quickly.
RECOVERY_DAYS = (90, 180)
NIR_LOSS = 0.4
SWIR_GAIN = 0.3
SEED_ATTEMPTS = 50


@effect(KIND)
def open_gap(event: Event, refl: Reflectance, when: datetime.date) -> None:
    """Drop NDVI at once, then let it climb back linearly to the forest's own level by the recovery date."""
    days = (when - event.date).days
    if days >= event.duration_days:
        return
    drop = np.clip(event.magnitude * (1.0 + 0.1 * event.pixel_variation), *DROP) * (1.0 - days / event.duration_days)
    lower_ndvi(refl, event.rows, event.cols, drop, nir_loss=NIR_LOSS, swir_gain=SWIR_GAIN)


@planner("selective-logging")
def plan_selective_logging(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """One logging operation per would-be clear-cut, each a cluster of separate 1-6 pixel gaps inside forest."""
    rng = stream_rng(spec.seed, Stream.SELECTIVE_LOGGING)
    dates = spread_dates(rng, *event_window(spec), spec.n_clearcuts)
    # Non-forest and the one-pixel margin around earlier gaps, so gaps never touch.
    events = place_logging(rng, grid, ~landcover.forest, dates)
    logger.debug("planted %d selective-logging gaps", len(events))
    return events


def place_logging(
    rng: np.random.Generator, grid: Grid, occupied: np.ndarray, dates: list[datetime.date]
) -> list[Event]:
    """One logging operation (a cluster of gaps) per date on free forest; marks the gaps in `occupied` in place."""
    radius_px = OPERATION_RADIUS_M / grid.resolution
    events: list[Event] = []
    for op, date in enumerate(dates):
        free = np.flatnonzero(~occupied)
        if free.size == 0:
            raise ValueError(f"no free forest left for logging operation {op + 1} of {len(dates)}")
        centre = np.array(np.unravel_index(rng.choice(free), grid.shape))
        for _ in range(int(rng.integers(GAPS_PER_OPERATION[0], GAPS_PER_OPERATION[1] + 1))):
            gap = _grow_gap(rng, centre, radius_px, occupied)
            if gap is None:
                continue
            occupied |= dilate(gap)
            rows, cols = np.nonzero(gap)
            events.append(
                Event(
                    id=f"{KIND}-{len(events) + 1:03d}",
                    kind=KIND,
                    date=date,
                    polygon=_pixel_union(rows, cols, grid),
                    rows=rows,
                    cols=cols,
                    pixel_variation=rng.standard_normal(rows.size).astype(np.float32),
                    end=date + datetime.timedelta(days=int(rng.integers(RECOVERY_DAYS[0], RECOVERY_DAYS[1] + 1))),
                    magnitude=float(rng.uniform(*DROP)),
                    detail=f"operation-{op + 1:03d}",
                )
            )
    return events


def _grow_gap(
    rng: np.random.Generator, centre: np.ndarray, radius_px: float, occupied: np.ndarray
) -> np.ndarray | None:
    """Grow a 4-connected gap of 1-6 free pixels from a seed near `centre`; None if no free seed is found."""
    rows, cols = occupied.shape
    for _ in range(SEED_ATTEMPTS):
        r, c = np.rint(centre + rng.normal(0.0, radius_px, 2)).astype(int)
        if 0 <= r < rows and 0 <= c < cols and not occupied[r, c]:
            break
    else:
        return None
    size = int(rng.integers(GAP_PIXELS[0], GAP_PIXELS[1] + 1))
    pixels = [(int(r), int(c))]
    while len(pixels) < size:
        candidates = sorted(
            {
                (pr + dr, pc + dc)
                for pr, pc in pixels
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= pr + dr < rows and 0 <= pc + dc < cols and not occupied[pr + dr, pc + dc]
            }
            - set(pixels)
        )
        if not candidates:
            break
        pixels.append(candidates[int(rng.integers(len(candidates)))])
    gap = np.zeros(occupied.shape, dtype=bool)
    gap[tuple(np.array(pixels).T)] = True
    return gap


def _pixel_union(rows: np.ndarray, cols: np.ndarray, grid: Grid) -> shapely.Polygon:
    """Outline of a 4-connected set of pixels in native coordinates."""
    res = grid.resolution
    x0 = grid.origin_x + cols * res
    y0 = grid.origin_y - (rows + 1) * res
    boxes = shapely.box(x0, y0, x0 + res, y0 + res)
    return shapely.normalize(shapely.union_all(boxes))
