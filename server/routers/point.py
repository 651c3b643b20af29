"""One pixel's alert, decoded: status name, detection date, magnitude and confidence."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from catalog.encoding import STATUS_CLASSES, date_from_days
from catalog.layers import CONFIDENCE, DATE, MAGNITUDE, STATUS
from server.deps import RegistryDep, Version

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
def point_alert(
    request: Request,
    registry: RegistryDep,
    lon: Annotated[float, Path(ge=-180, le=180, description="Longitude")],
    lat: Annotated[float, Path(ge=-90, le=90, description="Latitude")],
    version: Version = None,
) -> PointAlert:
    """Status, detection date, magnitude and confidence of the pixel at lon/lat."""
    resolved = registry.resolve(STATUS.name, version)
    values = {
        spec.asset: _value(request, registry, spec.name, resolved.publication.id, lon, lat)
        for spec in (STATUS, DATE, MAGNITUDE, CONFIDENCE)
    }
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
