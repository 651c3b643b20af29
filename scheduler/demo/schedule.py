"""Acquisition dates: a regular revisit with a few deterministic gaps."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

from scheduler.demo.rng import Stream, stream_rng
from scheduler.demo.spec import DemoSpec

# Mean overpass time of Sentinel-2 over central Europe.
OVERPASS_TIME = datetime.time(10, 12, 0, tzinfo=datetime.UTC)
# Real archives miss the odd acquisition (downlink, processing gaps).
SKIP_PROBABILITY = 0.03
PLATFORMS = ("sentinel-2a", "sentinel-2b")
DUPLICATE_SUFFIX = "_R2"


@dataclass(frozen=True)
class Acquisition:
    """One acquisition: index in the nominal revisit sequence (seeds its randomness), time and platform."""

    index: int
    datetime: datetime.datetime
    platform: str
    # Tells a second item of the same acquisition (a reprocessed copy) from the first.
    suffix: str = ""

    @property
    def item_id(self) -> str:
        """STAC item id, e.g. S2X_DEMO_20210101 (S2X_DEMO_20210101_R2 for a reprocessed copy)."""
        return f"S2X_DEMO_{self.datetime:%Y%m%d}{self.suffix}"


def acquisition_schedule(spec: DemoSpec) -> list[Acquisition]:
    """All acquisitions from start to end inclusive, every revisit_days, minus a few skipped ones."""
    n = (spec.end - spec.start).days // spec.revisit_days + 1
    skip = stream_rng(spec.seed, Stream.SCHEDULE).random(n) < SKIP_PROBABILITY
    # Keep the first and last so the archive always spans the whole requested period.
    skip[0] = skip[-1] = False
    schedule = []
    for i in range(n):
        if skip[i]:
            continue
        day = spec.start + datetime.timedelta(days=i * spec.revisit_days)
        when = datetime.datetime.combine(day, OVERPASS_TIME)
        schedule.append(Acquisition(i, when, PLATFORMS[i % 2]))
    return schedule


def duplicated(spec: DemoSpec, schedule: list[Acquisition]) -> list[Acquisition]:
    """The reprocessed copies: about spec.duplicate_fraction of the acquisitions published a second time."""
    if not spec.duplicate_fraction:
        return []
    chosen = stream_rng(spec.seed, Stream.DUPLICATES).random(len(schedule)) < spec.duplicate_fraction
    return [replace(acq, suffix=DUPLICATE_SUFFIX) for acq, copy in zip(schedule, chosen, strict=True) if copy]
