"""Alert filters (detection dates, confidence, stage) shared by XYZ tiles and WMS GetMap."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Query
from titiler.core.dependencies import DefaultDependency

from catalog.encoding import Status, days_since_epoch
from server.errors import BadRequest

CONFIRMED_STAGE = tuple(
    int(s) for s in (Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH, Status.FINISHED_LOW, Status.FINISHED_HIGH)
)
PROVISIONAL_STAGE = (int(Status.PROVISIONAL_LOW), int(Status.PROVISIONAL_HIGH), *CONFIRMED_STAGE)
# `provisional` means "at least provisional": a confirmed alert was provisional before, so it stays.
STAGES: dict[str, tuple[int, ...] | None] = {
    "any": None,
    "provisional": PROVISIONAL_STAGE,
    "confirmed": CONFIRMED_STAGE,
}
# Strict YYYY-MM-DD: date.fromisoformat also takes 20240101 or week dates, which we do not advertise.
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
PARAM_NAMES = ("detected_after", "detected_before", "min_confidence", "stage")


class FilterError(ValueError):
    """A filter value is malformed; `name` is the offending parameter."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


@dataclass(frozen=True)
class AlertFilter:
    """Which alert pixels to keep; None fields do not filter."""

    detected_after: dt.date | None = None
    detected_before: dt.date | None = None
    min_confidence: float | None = None
    stage: str = "any"

    @property
    def needs_date(self) -> bool:
        """True when the first-detection date layer must be read."""
        return self.detected_after is not None or self.detected_before is not None

    @property
    def needs_confidence(self) -> bool:
        """True when the confidence layer must be read."""
        return self.min_confidence is not None

    @property
    def needs_status(self) -> bool:
        """True when the status layer must be read."""
        return STAGES[self.stage] is not None

    def key(self) -> tuple:
        """The filter in normal form, for ETags."""
        return (self.detected_after, self.detected_before, self.min_confidence, self.stage)

    def keep(
        self, status: np.ma.MaskedArray | None, date: np.ma.MaskedArray | None, confidence: np.ma.MaskedArray | None
    ) -> np.ndarray:
        """Boolean array of the pixels passing the filter (nodata in a filtered layer never passes)."""
        shape = next(a.shape for a in (status, date, confidence) if a is not None)
        keep = np.ones(shape, dtype=bool)
        if date is not None:
            days = np.ma.filled(date.astype("int64"), 0)
            keep &= ~np.ma.getmaskarray(date) & (days > 0)
            if self.detected_after is not None:
                keep &= days >= days_since_epoch(self.detected_after)
            if self.detected_before is not None:
                keep &= days <= days_since_epoch(self.detected_before)
        if confidence is not None and self.min_confidence is not None:
            values = np.ma.filled(confidence.astype("float64"), np.nan)
            with np.errstate(invalid="ignore"):
                keep &= ~np.ma.getmaskarray(confidence) & (values >= self.min_confidence)
        codes = STAGES[self.stage]
        if status is not None and codes is not None:
            keep &= ~np.ma.getmaskarray(status) & np.isin(np.ma.filled(status, 0), codes)
        return keep


def parse_date(name: str, value: str) -> dt.date:
    """A YYYY-MM-DD date."""
    text = value.strip()
    try:
        if not ISO_DATE.fullmatch(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FilterError(name, "must be a date YYYY-MM-DD") from None


def parse_filter(
    detected_after: str | None = None,
    detected_before: str | None = None,
    min_confidence: str | None = None,
    stage: str | None = None,
) -> AlertFilter | None:
    """The filter the parameters ask for, None when they ask for none; FilterError on a bad value."""
    after = parse_date("detected_after", detected_after) if detected_after else None
    before = parse_date("detected_before", detected_before) if detected_before else None
    if after and before and after > before:
        raise FilterError("detected_after", "must not be later than detected_before")
    confidence = None
    if min_confidence:
        try:
            confidence = float(min_confidence)
        except ValueError:
            raise FilterError("min_confidence", "must be a number") from None
        if not math.isfinite(confidence) or confidence < 0:
            raise FilterError("min_confidence", "must be a finite number >= 0")
    stage_name = (stage or "any").strip().lower()
    if stage_name not in STAGES:
        raise FilterError("stage", f"must be one of {', '.join(STAGES)}")
    alert_filter = AlertFilter(after, before, confidence, stage_name)
    return alert_filter if alert_filter != AlertFilter() else None


@dataclass
class FilterParams(DefaultDependency):
    """TiTiler reader dependency: the alert filter query parameters, handed to the Reader as `alert_filter`."""

    # Plain strings, validated here: a bad value is a 400 with a reason, not FastAPI's 422.
    detected_after: Annotated[
        str | None, Query(description="Keep alerts first detected on or after this date (YYYY-MM-DD)")
    ] = None
    detected_before: Annotated[
        str | None, Query(description="Keep alerts first detected on or before this date (YYYY-MM-DD)")
    ] = None
    min_confidence: Annotated[str | None, Query(description="Keep alerts whose confidence is at least this")] = None
    stage: Annotated[
        str | None,
        Query(description="any (default), provisional (provisional or confirmed) or confirmed (incl. finished)"),
    ] = None

    def __post_init__(self) -> None:
        try:
            self.alert_filter = parse_filter(self.detected_after, self.detected_before, self.min_confidence, self.stage)
        except FilterError as exc:
            raise BadRequest(str(exc)) from None

    def as_dict(self, exclude_none: bool = True) -> dict:
        """Reader options: only the parsed filter."""
        return {"alert_filter": self.alert_filter} if self.alert_filter or not exclude_none else {}
