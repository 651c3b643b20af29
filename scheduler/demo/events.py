"""Planted events, the registry of functions that draw them into the reflectances, and of scenario planners.

Adding an event kind means giving it a code in KIND_CODES and writing one effect function registered with
`@effect("kind")`; adding a scenario means a planner registered with `@planner("scenario")`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import shapely

from scheduler.demo.surface import Reflectance

if TYPE_CHECKING:
    from scheduler.demo.grid import Grid
    from scheduler.demo.landcover import LandCover
    from scheduler.demo.spec import DemoSpec

# Pixel values of ground_truth_kind.tif (0: nothing planted there). Codes are stable: never renumber, only append.
KIND_CODES: dict[str, int] = {
    "clear-cut": 1,
    "degradation": 2,
    "selective-logging": 3,
    "fire": 4,
    "drought": 5,  # not a disturbance: forest NDVI dips for a few months, then recovers
    "haze": 6,  # not a disturbance: undetected haze brightens clear-labelled acquisitions
    "non-forest-change": 7,  # not a disturbance of forest: land-use change outside the forest mask
}
# Kinds that are forest disturbances (in ground_truth.tif); the others are look-alikes to count false alarms on.
DISTURBANCE_KINDS = frozenset({"clear-cut", "degradation", "selective-logging", "fire"})


@dataclass(frozen=True, eq=False)
class Event:
    """One planted event: where (geometry in the native CRS and the pixels whose centre it holds), when, what."""

    id: str
    kind: str
    date: datetime.date
    # Polygons of clear-cuts and degradation; pixel-exact (multi)polygons, holes included, for the other kinds.
    polygon: shapely.Polygon | shapely.MultiPolygon
    rows: np.ndarray
    cols: np.ndarray
    # Standard-normal draw per pixel, so effects vary within a patch.
    pixel_variation: np.ndarray = field(repr=False)
    # When the effect is over (drought, haze, regrown logging gap) or complete (degradation); None if open-ended.
    end: datetime.date | None = None
    # Strength in the kind's own unit (for the canopy kinds: NDVI drop of the event as a whole).
    magnitude: float = 0.0
    # Finer description where one kind covers several processes (e.g. which land-use change).
    detail: str | None = None
    # Per-pixel intensity in [0, 1] for kinds with a spatial gradient (haze thickness), else None.
    pixel_weight: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_pixels(
        cls,
        id: str,
        kind: str,
        date: datetime.date,
        polygon: shapely.Polygon | shapely.MultiPolygon,
        inside: np.ndarray,
        rng: np.random.Generator,
        **extra: object,
    ) -> Event:
        """An event over the True pixels of `inside`, with one standard-normal draw per pixel from `rng`."""
        rows, cols = np.nonzero(inside)
        variation = rng.standard_normal(rows.size).astype(np.float32)
        return cls(id=id, kind=kind, date=date, polygon=polygon, rows=rows, cols=cols, pixel_variation=variation,
                   **extra)  # fmt: skip

    @property
    def n_pixels(self) -> int:
        """Number of pixels the event covers."""
        return int(self.rows.size)

    @property
    def disturbance(self) -> bool:
        """Whether this is a forest disturbance that a monitor should alert on."""
        return self.kind in DISTURBANCE_KINDS

    @property
    def duration_days(self) -> int:
        """Days from start to end (0 for open-ended events)."""
        return (self.end - self.date).days if self.end else 0

    def years_since(self, when: datetime.date) -> float:
        """Time since the event in years (negative before it)."""
        return (when - self.date).days / 365.25


Effect = Callable[[Event, Reflectance, datetime.date], None]
EFFECTS: dict[str, Effect] = {}
Planner = Callable[["DemoSpec", "Grid", "LandCover"], list[Event]]
PLANNERS: dict[str, Planner] = {}


def effect(kind: str) -> Callable[[Effect], Effect]:
    """Register the function that applies events of `kind` to the reflectances (in place)."""
    if kind not in KIND_CODES:
        raise ValueError(f"event kind {kind!r} has no code in KIND_CODES")

    def register(func: Effect) -> Effect:
        EFFECTS[kind] = func
        return func

    return register


def planner(scenario: str) -> Callable[[Planner], Planner]:
    """Register the function that plans the events of one scenario."""

    def register(func: Planner) -> Planner:
        PLANNERS[scenario] = func
        return func

    return register


def apply_events(events: list[Event], refl: Reflectance, when: datetime.date) -> None:
    """Apply every event that has happened by `when` to the reflectances, in place."""
    for event in events:
        if when >= event.date:
            EFFECTS[event.kind](event, refl, when)
