"""Parameters of a synthetic demo archive and the handle to a generated one."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Planted events need a couple of months of post-event observations to be detectable at all.
MIN_POST_EVENT_DAYS = 60

# What the planted events are: one scenario per archive, so detection accuracy can be measured per scenario.
Scenario = Literal["clear-cut", "degradation", "selective-logging", "fire", "drought", "haze", "non-forest"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)
# Suites plant many kinds at once, with sensor and atmosphere nuisances, to test monitors as a real archive would.
Suite = Literal["hard"]
SUITES: tuple[str, ...] = get_args(Suite)


class DemoSpec(BaseModel):
    """Everything that determines a demo archive; the same spec always yields the same pixels."""

    model_config = ConfigDict(frozen=True)

    seed: int = 42
    width: int = Field(256, ge=16)
    height: int = Field(256, ge=16)
    resolution: float = Field(20.0, gt=0)
    epsg: int = 32633
    origin_x: float = 500000.0
    origin_y: float = 5400000.0
    start: datetime.date = datetime.date(2021, 1, 1)
    end: datetime.date = datetime.date(2024, 6, 30)
    revisit_days: int = Field(5, ge=1)
    disturbance_start: datetime.date = datetime.date(2023, 3, 1)
    # Number of clear-cuts; the other scenarios derive their number of events from it (0: no events at all).
    n_clearcuts: int = Field(12, ge=0)
    scenario: Scenario | Suite = "clear-cut"
    cloud_probability: float = Field(0.35, ge=0.0, le=1.0)
    collection_id: str = Field("sentinel-2-l2a-demo", min_length=1)
    # Nuisances, all off by default (the hard suite turns them on; see scheduler.demo.hard):
    # mean share of clear-labelled observations under a cloud or halo that SCL misses,
    leaked_cloud_fraction: float = Field(0.0, ge=0.0, le=0.2)
    # the sensor's point-spread function (Gaussian sigma) and the co-registration error (sd per axis), in pixels,
    psf_sigma_px: float = Field(0.0, ge=0.0, le=2.0)
    jitter_px: float = Field(0.0, ge=0.0, le=2.0)
    # and the share of acquisitions published twice (a reprocessed copy of the same day under another item id).
    duplicate_fraction: float = Field(0.0, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _check_dates(self) -> DemoSpec:
        """Reject time spans that leave no room for planted disturbances."""
        if self.end <= self.start:
            raise ValueError("end must be after start")
        latest = self.end - datetime.timedelta(days=MIN_POST_EVENT_DAYS)
        if self.n_clearcuts and not (self.start <= self.disturbance_start <= latest):
            raise ValueError(f"disturbance_start must lie in [start, end - {MIN_POST_EVENT_DAYS} days]")
        return self


@dataclass(frozen=True)
class DemoArchive:
    """Paths and acquisition dates of a generated demo archive."""

    root: Path
    catalog_path: Path
    forest_mask_path: Path
    ground_truth_path: Path
    ground_truth_raster_path: Path
    ground_truth_kind_path: Path
    dates: list[datetime.datetime]
    spec: DemoSpec
    # Class per pixel (scheduler.demo.hard.CLASS_CODES); only suites write it.
    ground_truth_class_path: Path | None = None
