"""The newest confirmed alert patches of a publication, filtered like the tiles (for the map's list)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Annotated

import numpy as np
from affine import Affine
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds
from scipy import ndimage

from catalog.encoding import CONFIRMED_CODES, STATUS_CLASSES, Status, context_colormap, date_from_days, status_colormap
from catalog.layers import CONFIDENCE, DATE, STATUS
from server.deps import RegistryDep, Version
from server.filters import AlertFilter, FilterParams
from server.registry import LayerRegistry

router = APIRouter(tags=["Alerts"])
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
# Lists kept per app: each filter setting the map's sliders visit is one; recomputing costs a full-area read.
CACHED_LISTS = 32


class AlertPatch(BaseModel):
    """A group of 8-connected confirmed alert pixels."""

    longitude: float
    latitude: float
    bbox: tuple[float, float, float, float]
    detection_date: str | None
    pixels: int
    area_ha: float


class NewestAlerts(BaseModel):
    """The newest patches, newest first."""

    version: str
    patches: list[AlertPatch]


class PatchCache:
    """Patches computed per (publication, filter) for one app; two apps never share theirs (equal ids may differ)."""

    def __init__(self, size: int = CACHED_LISTS) -> None:
        self.size = size
        self._lists: OrderedDict[tuple, list[AlertPatch]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> list[AlertPatch] | None:
        """The cached list, None when not computed yet."""
        with self._lock:
            if key in self._lists:
                self._lists.move_to_end(key)
                return self._lists[key]
            return None

    def put(self, key: tuple, patches: list[AlertPatch]) -> None:
        """Keep a list, dropping the least recently used beyond `size`."""
        with self._lock:
            self._lists[key] = patches
            self._lists.move_to_end(key)
            while len(self._lists) > self.size:
                self._lists.popitem(last=False)


_attach_lock = threading.Lock()


def patch_cache(app: FastAPI) -> PatchCache:
    """The app's own cache, made on first use."""
    with _attach_lock:
        cache = getattr(app.state, "newest_patches", None)
        if cache is None:
            cache = app.state.newest_patches = PatchCache()
        return cache


def pixel_area_m2(transform: Affine, crs: CRS, latitude: float) -> float:
    """The ground area of one pixel in square metres (geographic grids: at the given latitude)."""
    cell = abs(transform.a * transform.e - transform.b * transform.d)
    if crs.is_geographic:
        metres_per_degree = math.pi * EARTH_RADIUS_M / 180
        return cell * metres_per_degree**2 * math.cos(math.radians(latitude))
    _, metres_per_unit = crs.linear_units_factor
    return cell * metres_per_unit**2


def _read(
    request: Request, registry: LayerRegistry, version: str, alert_filter: AlertFilter | None
) -> tuple[dict[str, np.ma.MaskedArray], Affine, CRS]:
    """The full-resolution layers the patches and the filter need, by asset, and their grid."""
    specs = [STATUS, DATE] + ([CONFIDENCE] if alert_filter and alert_filter.needs_confidence else [])
    arrays: dict[str, np.ma.MaskedArray] = {}
    for spec in specs:
        resolved = registry.resolve(spec.name, version)
        with request.app.state.reader(str(resolved.path)) as src:
            arrays[spec.asset] = src.dataset.read(1, masked=True)
            transform, crs = src.dataset.transform, src.dataset.crs
    return arrays, transform, crs


def _patches(
    request: Request, registry: LayerRegistry, version: str, alert_filter: AlertFilter | None
) -> list[AlertPatch]:
    """Every confirmed patch of one publication among the pixels the filter keeps, newest first (cached)."""
    cache = patch_cache(request.app)
    key = (version, alert_filter.key() if alert_filter else None)
    cached = cache.get(key)
    if cached is not None:
        return cached
    arrays, transform, crs = _read(request, registry, version, alert_filter)
    status, date = arrays[STATUS.asset], arrays[DATE.asset]
    alerts = np.isin(np.ma.filled(status, 0), CONFIRMED_CODES)
    if alert_filter is not None:
        # The same pixels the filtered tiles show: patches are grouped after filtering.
        alerts &= alert_filter.keep(
            status if alert_filter.needs_status else None,
            date if alert_filter.needs_date else None,
            arrays.get(CONFIDENCE.asset),
        )
    labels, count = ndimage.label(alerts, structure=EIGHT_CONNECTED)
    patches: list[tuple[int, AlertPatch]] = []
    if count:
        index = np.arange(1, count + 1)
        dates = np.ma.filled(date, 0).astype(np.int64)
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
            pixels = int(sizes[i])
            patch = AlertPatch(
                longitude=round(float(lon[0]), 7),
                latitude=round(float(lat[0]), 7),
                bbox=tuple(round(float(v), 7) for v in bbox),
                detection_date=detected.isoformat() if detected else None,
                pixels=pixels,
                area_ha=round(pixels * pixel_area_m2(transform, crs, float(lat[0])) / 10_000, 4),
            )
            patches.append((day, patch))
    # Newest first; ties: the bigger patch first.
    ordered = [p for _, p in sorted(patches, key=lambda dp: (-dp[0], -dp[1].pixels))]
    cache.put(key, ordered)
    return ordered


@router.get(
    "/alerts/newest",
    response_model=NewestAlerts,
    operation_id="listNewestAlerts",
    summary="The newest confirmed alert patches of a publication",
)
def newest_alerts(
    request: Request,
    registry: RegistryDep,
    filters: Annotated[FilterParams, Depends()],
    limit: Annotated[int, Query(ge=1, le=500, description="How many patches")] = 20,
    version: Version = None,
) -> NewestAlerts:
    """Confirmed alert pixels the filters keep, grouped into 8-connected patches: centroid, bbox, date, size."""
    resolved = registry.resolve(STATUS.name, version)
    version_id = resolved.publication.id
    patches = _patches(request, registry, version_id, filters.alert_filter)
    return NewestAlerts(version=version_id, patches=patches[:limit])


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
