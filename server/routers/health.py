"""Health and the list of layers and publications."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from catalog.diskspace import MB, NEARLY_FULL, free_bytes
from catalog.runs import RunLog
from server.deps import RegistryDep, SettingsDep

router = APIRouter()
# Health and status change with every run: a browser must never answer the map's poll from its cache.
NO_STORE = {"Cache-Control": "no-store"}


class Health(BaseModel):
    """Liveness, freshness of the last successful run, and what is published."""

    status: str
    reason: str | None = None
    last_successful_run: str | None = None
    last_run_outcome: str | None = None
    last_run_error: str | None = None
    free_disk_mb: float | None = None
    latest_version: str | None
    latest_datetime: str | None
    published: str | None
    publications: int


@router.get(
    "/healthz",
    response_model=Health,
    operation_id="getHealth",
    tags=["Health"],
    responses={503: {"model": Health, "description": "The last successful run is too old, or the disk is full"}},
)
def healthz(request: Request, registry: RegistryDep, settings: SettingsDep) -> JSONResponse:
    """200 while the server runs and updates succeed; 503 when the last successful run is too old."""
    index = registry.index()
    latest = index.latest
    runs = RunLog(settings.run_log_path)
    success, newest = runs.last_success(), (runs.read() or [None])[-1]
    status, reason = "ok", None
    try:
        free = free_bytes(settings.stac_dir)
    except OSError:
        free = None
    if free is not None and free < NEARLY_FULL:
        # Every run would fail on its first write: wake the operator now, not after healthz_max_age_seconds.
        status, reason = "disk-full", f"only {free / MB:.1f} MB free on the disk of the published catalog"
    if settings.healthz_max_age_seconds is not None:
        # Before the first run completes, the server's own start is the reference.
        since = success.finished_at if success else request.app.state.started
        age = (dt.datetime.now(dt.UTC) - since).total_seconds()
        if age > settings.healthz_max_age_seconds and status == "ok":
            status = "stale"
            reason = f"no successful update run for {age:.0f} s (limit {settings.healthz_max_age_seconds:.0f} s)"
    health = Health(
        status=status,
        reason=reason,
        last_successful_run=success.finished if success else None,
        last_run_outcome=newest.outcome if newest else None,
        last_run_error=newest.error if newest else None,
        free_disk_mb=round(free / MB, 1) if free is not None else None,
        latest_version=latest.id if latest else None,
        latest_datetime=latest.datetime.isoformat() if latest else None,
        published=latest.published.isoformat() if latest else None,
        publications=len(index.publications),
    )
    return JSONResponse(health.model_dump(), status_code=200 if status == "ok" else 503, headers=NO_STORE)


class Status(BaseModel):
    """The run history, newest first."""

    last_successful_run: str | None
    runs: list[dict]


@router.get("/status", response_model=Status, operation_id="getStatus", tags=["Health"])
def run_status(response: Response, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Status:
    """The latest update runs: start, end, tiles, acquisitions, outcome, error."""
    response.headers.update(NO_STORE)
    log = RunLog(settings.run_log_path)
    success = log.last_success()
    runs = [asdict(r) for r in reversed(log.read())][:limit]
    return Status(last_successful_run=success.finished if success else None, runs=runs)


class LayerInfo(BaseModel):
    """A named layer and where to get it."""

    name: str
    title: str
    description: str
    tilejson: str
    tiles: str
    versions: list[str]


@router.get("/layers", response_model=list[LayerInfo], operation_id="listLayers", tags=["Layers"])
def list_layers(request: Request, registry: RegistryDep) -> list[LayerInfo]:
    """Every named layer with its XYZ template and the publication versions."""
    versions = [p.id for p in registry.index().publications]
    base = str(request.base_url).rstrip("/")
    return [
        LayerInfo(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            tilejson=f"{base}/layers/{spec.name}/WebMercatorQuad/tilejson.json",
            tiles=f"{base}/layers/{spec.name}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png",
            versions=versions,
        )
        for spec in registry.layers
    ]
