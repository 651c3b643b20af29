"""What 'now' means: the real UTC time, or the demo's accelerated clock."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.config import ClockConfig


def utc(value: dt.datetime) -> dt.datetime:
    """Return an aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass
class Clock:
    """Simulated time runs from `start` at `days_per_minute`; real time when start is None."""

    start: dt.datetime | None = None
    days_per_minute: float = 15.0
    stop: dt.datetime | None = None
    wall: Callable[[], float] = time.monotonic
    _wall_start: float = field(init=False)

    def __post_init__(self) -> None:
        self._wall_start = self.wall()

    def now(self) -> dt.datetime:
        """The current (possibly simulated) time, aware UTC."""
        if self.start is None:
            return dt.datetime.now(dt.UTC)
        elapsed_min = (self.wall() - self._wall_start) / 60.0
        now = utc(self.start) + dt.timedelta(days=elapsed_min * self.days_per_minute)
        return min(now, utc(self.stop)) if self.stop else now


def clock_from_config(cfg: ClockConfig) -> Clock:
    """Build the clock the config asks for."""
    if cfg.kind == "real":
        return Clock()
    return Clock(start=cfg.start, days_per_minute=cfg.days_per_minute, stop=cfg.stop)
