"""Parameters of a synthetic demo archive and the handle to a generated one."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Clear-cuts need a couple of months of post-event observations to be detectable at all.
MIN_POST_EVENT_DAYS = 60


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
    n_clearcuts: int = Field(12, ge=0)
    cloud_probability: float = Field(0.35, ge=0.0, le=1.0)
    collection_id: str = Field("sentinel-2-l2a-demo", min_length=1)

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
    dates: list[datetime.datetime]
    spec: DemoSpec
