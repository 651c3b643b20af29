"""One pixel's time series for the click panel: observations, the fitted model with its threshold band, the alert."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path as FilePath
from typing import Annotated

import numpy as np
import pyproj
from affine import Affine
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from catalog.errors import LayerNotFound
from catalog.series import MODEL_ROLE, PixelModel, item_series, parse_key, read_model, read_observations
from catalog.store import Publication
from server.caching import IMMUTABLE, matches, request_etag
from server.deps import RegistryDep, SettingsDep, Version
from server.errors import ForbiddenPath
from server.registry import LayerRegistry
from server.routers.point import point_alert

router = APIRouter(tags=["Alerts"])

CURVE_STEP_DAYS = 5
UNITS = {
    "ndvi": "NDVI (unitless, -1 .. 1)",
    "nbr": "NBR (unitless, -1 .. 1)",
    "ndmi": "NDMI (unitless, -1 .. 1)",
    "evi": "EVI (unitless)",
}


class Observation(BaseModel):
    """One clear observation of the index."""

    date: str
    value: float


class CurvePoint(BaseModel):
    """The model's expected value and threshold band on one day."""

    date: str
    value: float
    lower: float
    upper: float


class SeriesModel(BaseModel):
    """The fitted model at the pixel, sampled over the observed period."""

    monitor: str
    formula: str
    band: str
    curve: list[CurvePoint]


class PixelSeries(BaseModel):
    """Everything the click panel plots for one pixel."""

    longitude: float
    latitude: float
    version: str
    tile: str
    row: int
    col: int
    index: str
    units: str
    observations: list[Observation]
    model: SeriesModel | None
    monitoring_start: str | None
    status: int
    status_name: str
    detection_date: str | None
    confidence: float | None
    magnitude: float | None


@functools.lru_cache(maxsize=4096)
def _item(path: str) -> dict:
    """A published item's JSON (items are immutable: safe to cache)."""
    return json.loads(FilePath(path).read_text(encoding="utf-8"))


@functools.cache
def _to_crs(crs: str) -> pyproj.Transformer:
    """Longitude/latitude to a tile CRS."""
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def locate(registry: LayerRegistry, publication: Publication, lon: float, lat: float) -> tuple[str, dict, int, int]:
    """The tile, item and pixel (row, col) of the publication holding lon/lat; LayerNotFound outside the area."""
    for tile_id, item_id in sorted(publication.items.items()):
        item = _item(str(registry.layout.item_path(item_id)))
        props = item["properties"]
        crs = props.get("proj:code") or props.get("proj:wkt2")
        x, y = _to_crs(crs).transform(lon, lat)
        col, row = ~Affine(*props["proj:transform"][:6]) @ (x, y)
        height, width = props["proj:shape"]
        if 0 <= row < height and 0 <= col < width:
            return tile_id, item, int(row), int(col)
    raise LayerNotFound(f"{lon:.6f},{lat:.6f} is outside the published area")


def _inside(registry: LayerRegistry, path: FilePath) -> FilePath:
    """A file the item names, refused if it lies outside the published catalog."""
    if not registry.contains(path):
        raise ForbiddenPath("series files must lie inside the published catalog")
    return path


def _curve(model: PixelModel, start: dt.datetime, end: dt.datetime) -> list[CurvePoint]:
    """The model sampled every CURVE_STEP_DAYS days from start to end (inclusive of both ends' days)."""
    days = max(0, (end.date() - start.date()).days)
    times = [dt.datetime.combine(start.date(), dt.time()) + dt.timedelta(days=d) for d in range(0, days + 1)]
    times = times[::CURVE_STEP_DAYS] + ([times[-1]] if days % CURVE_STEP_DAYS else [])
    values = model.form.predict(model.coefficients, times)
    return [
        CurvePoint(
            date=t.date().isoformat(),
            value=round(float(v), 4),
            lower=round(float(v + model.lower), 4),
            upper=round(float(v + model.upper), 4),
        )
        for t, v in zip(times, values, strict=True)
        if np.isfinite(v)
    ]


@router.get(
    "/series/{lon},{lat}",
    response_model=PixelSeries,
    operation_id="getPixelSeries",
    summary="Time series of the pixel at a longitude/latitude: observations, model, threshold band, alert",
)
def pixel_series(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    lon: Annotated[float, Path(ge=-180, le=180, description="Longitude")],
    lat: Annotated[float, Path(ge=-90, le=90, description="Latitude")],
    version: Version = None,
) -> Response:
    """The index values the monitor absorbed at the pixel, its fitted model and band, and the decoded alert."""
    publication = registry.index().get(version)
    versioned = version not in (None, "latest")
    tag = request_etag(request, publication.id)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE if versioned else f"public, max-age={settings.latest_max_age}"}
    if matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    tile_id, item, row, col = locate(registry, publication, lon, lat)
    item_dir = registry.layout.item_path(item["id"]).parent
    model_path, chunk_paths = item_series(item, item_dir)
    observations = read_observations([_inside(registry, p) for p in chunk_paths], row, col)
    model = read_model(_inside(registry, model_path), row, col) if model_path else None
    model_asset = next((a for a in item["assets"].values() if MODEL_ROLE in a.get("roles", [])), {})
    start = model_asset.get("nrt:monitoring_start")
    alert = point_alert(request, registry, lon, lat, publication.id)
    curve = None
    if model is not None and observations:
        first = parse_key(observations[0][0])
        last = max(parse_key(observations[-1][0]), parse_key(item["properties"]["datetime"][:19]))
        curve = SeriesModel(
            monitor=model.form.monitor,
            formula=model.form.describe(),
            band=model.form.band,
            curve=_curve(model, first, last),
        )
    index = item["properties"].get("nrt:index", "index")
    body = PixelSeries(
        longitude=lon,
        latitude=lat,
        version=publication.id,
        tile=tile_id,
        row=row,
        col=col,
        index=index,
        units=UNITS.get(index, index),
        observations=[Observation(date=key, value=value) for key, value in observations],
        model=curve,
        monitoring_start=start,
        status=alert.status,
        status_name=alert.status_name,
        detection_date=alert.detection_date,
        confidence=alert.confidence,
        magnitude=alert.magnitude,
    )
    return JSONResponse(body.model_dump(), headers=headers)
