"""Health and the list of layers and publications."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from server.deps import RegistryDep

router = APIRouter()


class Health(BaseModel):
    """Liveness plus what is published."""

    status: str
    latest_version: str | None
    latest_datetime: str | None
    published: str | None
    publications: int


@router.get("/healthz", response_model=Health, operation_id="getHealth", tags=["Health"])
def healthz(registry: RegistryDep) -> Health:
    """Answers 200 while the server runs; tells what is published."""
    index = registry.index()
    latest = index.latest
    return Health(
        status="ok",
        latest_version=latest.id if latest else None,
        latest_datetime=latest.datetime.isoformat() if latest else None,
        published=latest.published.isoformat() if latest else None,
        publications=len(index.publications),
    )


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
