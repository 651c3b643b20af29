"""One pixel's alert, decoded: status name, detection date, magnitude and confidence."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from catalog.encoding import STATUS_CLASSES, Status, date_from_days
from catalog.layers import CONFIDENCE, DATE, MAGNITUDE, STATUS
from server.deps import RegistryDep, Version
from server.filters import AlertFilter, FilterParams

router = APIRouter(tags=["Alerts"])
NAMES = {int(c.code): c.name for c in STATUS_CLASSES}


class PointAlert(BaseModel):
    """The decoded alert at one location."""

    longitude: float
    latitude: float
    version: str
    status: int
    status_name: str
    detection_date: str | None
    magnitude: float | None
    confidence: float | None


def _value(request: Request, registry: RegistryDep, name: str, version: str | None, lon: float, lat: float) -> float:
    resolved = registry.resolve(name, version)
    with request.app.state.reader(str(resolved.path)) as src:
        return float(src.point(lon, lat).data[0])


@router.get(
    "/point/{lon},{lat}",
    response_model=PointAlert,
    operation_id="getPointAlert",
    summary="Decoded alert layers at a longitude/latitude",
)
def point_alert_route(
    request: Request,
    registry: RegistryDep,
    lon: Annotated[float, Path(ge=-180, le=180, description="Longitude")],
    lat: Annotated[float, Path(ge=-90, le=90, description="Latitude")],
    filters: Annotated[FilterParams, Depends()],
    version: Version = None,
) -> PointAlert:
    """Status, detection date, magnitude and confidence of the pixel at lon/lat; an alert the filters drop is none."""
    return point_alert(request, registry, lon, lat, version, filters.alert_filter)


def filtered_out(alert_filter: AlertFilter | None, values: dict[str, float]) -> bool:
    """True when the pixel holds an alert (status 1-8) that the filter drops."""
    if alert_filter is None or not 1 <= int(values["status"]) <= 8:
        return False

    def one(name: str) -> np.ma.MaskedArray:
        return np.ma.masked_invalid(np.array([[values[name]]], dtype=np.float64))

    return not bool(alert_filter.keep(one("status"), one("date"), one("confidence"))[0, 0])


def point_alert(
    request: Request,
    registry: RegistryDep,
    lon: float,
    lat: float,
    version: str | None = None,
    alert_filter: AlertFilter | None = None,
) -> PointAlert:
    """The decoded alert at lon/lat (also GetFeatureInfo's); an alert the filter drops reads as no alert."""
    resolved = registry.resolve(STATUS.name, version)
    values = {
        spec.asset: _value(request, registry, spec.name, resolved.publication.id, lon, lat)
        for spec in (STATUS, DATE, MAGNITUDE, CONFIDENCE)
    }
    if filtered_out(alert_filter, values):
        values = {"status": float(Status.NONE), "date": 0.0, "magnitude": math.nan, "confidence": math.nan}
    status = int(values["status"])
    day = date_from_days(int(values["date"]))

    def finite(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    return PointAlert(
        longitude=lon,
        latitude=lat,
        version=resolved.publication.id,
        status=status,
        status_name=NAMES.get(status, "unknown"),
        detection_date=day.isoformat() if day else None,
        magnitude=finite(values["magnitude"]),
        confidence=finite(values["confidence"]),
    )
