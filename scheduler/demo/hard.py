"""The hard suite: every kind of event and nuisance in one archive, in a southern-hemisphere UTM zone.

Clear-cuts of 0.2-20 ha (a few of the smallest size on purpose), two fires with regrowth, selective logging, a
drought over about a tenth of the forest (NDVI down by up to about 0.09), burning-season smoke the scene
classification calls clear (vegetation), small clouds and halos it misses, sensor blur, co-registration jitter,
duplicate items of one day; crops border the forest. Its ground truth adds a class raster, for accuracy per class.
"""

from __future__ import annotations

import logging

import numpy as np

from scheduler.demo.clearcuts import place_clearcuts
from scheduler.demo.drought import place_drought
from scheduler.demo.events import DISTURBANCE_KINDS, Event, planner
from scheduler.demo.fields import dilate
from scheduler.demo.fire import place_fires
from scheduler.demo.grid import Grid
from scheduler.demo.haze import place_smoke
from scheduler.demo.landcover import Cover, LandCover
from scheduler.demo.placement import event_window, spread_dates
from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.selective import place_logging
from scheduler.demo.spec import DemoSpec

logger = logging.getLogger(__name__)

SUITE = "hard"
# The seed split, in one place: tune on TUNING_SEEDS only, report TEST_SEEDS.
TUNING_SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5)
TEST_SEEDS: tuple[int, ...] = (101, 102, 103, 104, 105)
# UTM zone 21 south (southern Amazon, about 10 deg S 54 deg W): false northings, negative latitudes.
EPSG = 32721
ORIGIN = (600000.0, 8900000.0)
# 2.5 % of clear observations under a missed cloud or halo; a PSF of 0.5 px; co-registration within about 0.3 px
# (95 %), as Sentinel-2's multi-temporal requirement; 5 % of the days published twice.
NUISANCES = {"leaked_cloud_fraction": 0.025, "psf_sigma_px": 0.5, "jitter_px": 0.15, "duplicate_fraction": 0.05}

CLEARCUTS_PER_256PX = 12
SMALL_CLEARINGS = 3
SMALL_AREA_HA = (0.2, 0.24)
AREA_HA = (0.2, 20.0)
# A 0.2 ha clearing holds 4-6 pixel centres at 20 m.
MIN_PIXELS = 4
FIRES = 2
LOGGING_PER_CLEARCUT = 1 / 3
DROUGHT_SHARE = 0.1
# NDVI drop at the drought's core (about 0.09 at most with the pixel scatter), fading to none at its edge.
DROUGHT_DROP = (0.075, 0.082)
SMOKE_EPISODES = 2

# Pixel values of ground_truth_class.tif. Disjoint: a disturbed pixel is never edge, an edge pixel never drought.
CLASS_CODES: dict[str, int] = {
    "stable-forest": 1,
    "clear-cut": 2,
    "fire": 3,
    "selective-logging": 4,
    "drought-forest": 5,
    "edge": 6,  # undisturbed forest next to non-forest or to a disturbance: blur and jitter mix it with them
    "crop": 7,
    "other": 8,  # grassland and water
}


def hard_spec(seed: int, size: int = 512) -> DemoSpec:
    """The hard suite's spec for one seed on a size x size px grid."""
    # Twelve clear-cuts per 256 x 256 px (at least twelve): larger grids keep the density of events.
    n_clearcuts = round(CLEARCUTS_PER_256PX * max(1.0, (size / 256) ** 2))
    return DemoSpec(
        seed=seed, width=size, height=size, scenario=SUITE, epsg=EPSG, origin_x=ORIGIN[0], origin_y=ORIGIN[1],
        n_clearcuts=n_clearcuts, **NUISANCES,
    )  # fmt: skip


@planner(SUITE)
def plan_hard(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """Clear-cuts, fires and logging on separate forest; a drought beside them; haze over everything."""
    forest = landcover.forest
    first, last = event_window(spec)
    occupied = ~forest
    rng = stream_rng(spec.seed, Stream.EVENTS)
    n_small = min(SMALL_CLEARINGS, spec.n_clearcuts)
    cuts = place_clearcuts(rng, grid, occupied, spread_dates(rng, first, last, n_small), SMALL_AREA_HA, MIN_PIXELS)
    cuts += place_clearcuts(
        rng,
        grid,
        occupied,
        spread_dates(rng, first, last, spec.n_clearcuts - n_small),
        AREA_HA,
        MIN_PIXELS,
        n_small + 1,
    )
    fire_rng = stream_rng(spec.seed, Stream.FIRE)
    fires = place_fires(fire_rng, grid, forest, occupied, spread_dates(fire_rng, first, last, FIRES))
    log_rng = stream_rng(spec.seed, Stream.SELECTIVE_LOGGING)
    n_logging = max(1, round(spec.n_clearcuts * LOGGING_PER_CLEARCUT))
    logging_gaps = place_logging(log_rng, grid, occupied, spread_dates(log_rng, first, last, n_logging))
    disturbed = _pixels(grid, cuts + fires + logging_gaps)
    drought_rng = stream_rng(spec.seed, Stream.HARD_DROUGHT)
    allowed = forest & ~dilate(disturbed)
    share = min(DROUGHT_SHARE * forest.sum() / max(allowed.sum(), 1), 1.0)
    drought = place_drought(drought_rng, spec, grid, allowed, share, DROUGHT_DROP)
    haze = place_smoke(stream_rng(spec.seed, Stream.SMOKE), spec, grid, SMOKE_EPISODES)
    logger.debug("hard suite: %d clear-cuts, %d fires, %d logging gaps", len(cuts), len(fires), len(logging_gaps))
    # Drought first (a cut replaces whatever canopy there was), haze last (it lies over the whole scene).
    return drought + cuts + fires + logging_gaps + haze


def _pixels(grid: Grid, events: list[Event]) -> np.ndarray:
    """Mask of the pixels the events cover."""
    mask = np.zeros(grid.shape, dtype=bool)
    for event in events:
        mask[event.rows, event.cols] = True
    return mask


def class_raster(events: list[Event], landcover: LandCover) -> np.ndarray:
    """uint8 CLASS_CODES per pixel: what each pixel is, for accuracy per class."""
    out = np.full(landcover.cover.shape, CLASS_CODES["other"], dtype=np.uint8)
    out[np.isin(landcover.cover, (Cover.WINTER_CROP, Cover.SUMMER_CROP))] = CLASS_CODES["crop"]
    forest = landcover.forest
    out[forest] = CLASS_CODES["stable-forest"]
    disturbed = np.zeros(forest.shape, dtype=bool)
    for event in events:
        if event.kind == "drought":
            out[event.rows, event.cols] = CLASS_CODES["drought-forest"]
        if event.kind in DISTURBANCE_KINDS:
            disturbed[event.rows, event.cols] = True
    out[forest & ~disturbed & dilate(~forest | disturbed)] = CLASS_CODES["edge"]
    for event in events:
        if event.kind in DISTURBANCE_KINDS:
            out[event.rows, event.cols] = CLASS_CODES[event.kind]
    return out
