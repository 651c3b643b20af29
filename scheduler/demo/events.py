"""Planted disturbance events and the registry of functions that draw them into the reflectances.

Adding a disturbance kind means writing one effect function and registering it with `@effect("kind")`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely

from scheduler.demo.surface import Reflectance


@dataclass(frozen=True, eq=False)
class Event:
    """One disturbance: where (polygon in the native CRS and the pixels whose centre it holds), when, what."""

    id: str
    kind: str
    date: datetime.date
    polygon: shapely.Polygon
    rows: np.ndarray
    cols: np.ndarray
    # Standard-normal draw per disturbed pixel, so effects vary within a patch.
    pixel_variation: np.ndarray = field(repr=False)

    @property
    def n_pixels(self) -> int:
        """Number of disturbed pixels."""
        return int(self.rows.size)

    def years_since(self, when: datetime.date) -> float:
        """Time since the event in years (negative before it)."""
        return (when - self.date).days / 365.25


Effect = Callable[[Event, Reflectance, datetime.date], None]
EFFECTS: dict[str, Effect] = {}


def effect(kind: str) -> Callable[[Effect], Effect]:
    """Register the function that applies events of `kind` to the reflectances (in place)."""

    def register(func: Effect) -> Effect:
        EFFECTS[kind] = func
        return func

    return register


def apply_events(events: list[Event], refl: Reflectance, when: datetime.date) -> None:
    """Apply every event that has happened by `when` to the reflectances, in place."""
    for event in events:
        if when >= event.date:
            EFFECTS[event.kind](event, refl, when)
