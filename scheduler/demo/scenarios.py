"""The demo scenarios: which events each archive plants (one scenario per archive)."""

from __future__ import annotations

# Importing the kind modules registers their effects and planners.
from scheduler.demo import clearcuts, degradation, drought, fire, hard, haze, nonforest, selective  # noqa: F401
from scheduler.demo.events import PLANNERS, Event
from scheduler.demo.grid import Grid
from scheduler.demo.landcover import LandCover
from scheduler.demo.spec import SCENARIOS, SUITES, DemoSpec

if missing := set(SCENARIOS + SUITES) - set(PLANNERS):
    raise RuntimeError(f"scenarios without a planner: {sorted(missing)}")


def plan_events(spec: DemoSpec, grid: Grid, landcover: LandCover) -> list[Event]:
    """All events of the spec's scenario; none when spec.n_clearcuts is 0."""
    if not spec.n_clearcuts:
        return []
    return PLANNERS[spec.scenario](spec, grid, landcover)
