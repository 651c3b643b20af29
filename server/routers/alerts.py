"""The newest confirmed alert patches of the latest publication (for the map's list)."""

from __future__ import annotations

import threading
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds
from scipy import ndimage

from catalog.encoding import CONFIRMED_CODES, STATUS_CLASSES, Status, context_colormap, date_from_days, status_colormap
from catalog.layers import DATE, STATUS
from server.deps import RegistryDep

router = APIRouter(tags=["Alerts"])
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class AlertPatch(BaseModel):
    """A group of 8-connected confirmed alert pixels."""

    longitude: float
    latitude: float
    bbox: tuple[float, float, float, float]
    detection_date: str | None
    pixels: int


class NewestAlerts(BaseModel):
    """The newest patches, newest first."""

    version: str
    patches: list[AlertPatch]


_cache: dict[str, list[AlertPatch]] = {}
_cache_lock = threading.Lock()


def _patches(request: Request, registry: RegistryDep, version: str) -> list[AlertPatch]:
    """Every confirmed patch of one publication, newest first (computed once per publication)."""
    with _cache_lock:
        if version in _cache:
            return _cache[version]
    arrays = {}
    for spec in (STATUS, DATE):
        resolved = registry.resolve(spec.name, version)
        with request.app.state.reader(str(resolved.path)) as src:
            arrays[spec.asset] = src.dataset.read(1)
            transform, crs = src.dataset.transform, src.dataset.crs
    labels, count = ndimage.label(np.isin(arrays["status"], CONFIRMED_CODES), structure=EIGHT_CONNECTED)
    patches: list[tuple[int, AlertPatch]] = []
    if count:
        index = np.arange(1, count + 1)
        dates = arrays["date"].astype(np.int64)
        valid_dates = np.where(dates > 0, dates, np.iinfo(np.int64).max)
        first = ndimage.minimum(valid_dates, labels, index)
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index)
        centres = ndimage.center_of_mass(labels > 0, labels, index)
        slices = ndimage.find_objects(labels)
        for i in range(count):
            row, col = centres[i]
            x, y = transform @ (col + 0.5, row + 0.5)
            lon, lat = transform_points(crs, "EPSG:4326", [x], [y])
            rs, cs = slices[i]
            x0, y0 = transform @ (cs.start, rs.stop)
            x1, y1 = transform @ (cs.stop, rs.start)
            bbox = transform_bounds(crs, "EPSG:4326", min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            day = int(first[i]) if first[i] < np.iinfo(np.int64).max else 0
            detected = date_from_days(day)
            patch = AlertPatch(
                longitude=round(float(lon[0]), 7),
                latitude=round(float(lat[0]), 7),
                bbox=tuple(round(float(v), 7) for v in bbox),
                detection_date=detected.isoformat() if detected else None,
                pixels=int(sizes[i]),
            )
            patches.append((day, patch))
    # Newest first; ties: the bigger patch first.
    ordered = [p for _, p in sorted(patches, key=lambda dp: (-dp[0], -dp[1].pixels))]
    with _cache_lock:
        if len(_cache) > 8:
            _cache.clear()
        _cache[version] = ordered
    return ordered


@router.get(
    "/alerts/newest",
    response_model=NewestAlerts,
    operation_id="listNewestAlerts",
    summary="The newest confirmed alert patches of the latest publication",
)
def newest_alerts(
    request: Request,
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=500, description="How many patches")] = 20,
) -> NewestAlerts:
    """Confirmed alert pixels grouped into 8-connected patches: centroid, bbox, first detection date, size."""
    resolved = registry.resolve(STATUS.name, None)
    version = resolved.publication.id
    return NewestAlerts(version=version, patches=_patches(request, registry, version)[:limit])


class LegendEntry(BaseModel):
    """One colour of the map and what it means."""

    code: int
    name: str
    description: str
    color: str
    layer: str


@router.get("/alerts/legend", response_model=list[LegendEntry], operation_id="getAlertLegend")
def alert_legend() -> list[LegendEntry]:
    """The map's colours: visible alert classes (style `alerts`) and the monitored-area background (`context`)."""
    colours = status_colormap()
    entries = [
        LegendEntry(
            code=int(c.code), name=c.name, description=c.description, color=_hex(colours[c.code]), layer="alerts"
        )
        for c in STATUS_CLASSES
        if colours[int(c.code)][3]
    ]
    context = context_colormap()
    for code, name, description in (
        (int(Status.NONE), "monitored", "Monitored forest"),
        (int(Status.NOT_MONITORED), "not-monitored", "Outside the forest mask"),
    ):
        entries.append(
            LegendEntry(code=code, name=name, description=description, color=_hex(context[code]), layer="context")
        )
    return entries


def _hex(rgba: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgba[:3])
