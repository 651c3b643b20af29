"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from server.registry import LayerRegistry, ResolvedLayer
from server.settings import ServerSettings

LAYER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"
VERSION_PATTERN = r"^(latest|[0-9]{8}T[0-9]{6}(-[0-9]+)?)$"
ITEM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


def get_registry(request: Request) -> LayerRegistry:
    """The app's layer registry."""
    return request.app.state.registry


def get_settings(request: Request) -> ServerSettings:
    """The app's settings."""
    return request.app.state.settings


RegistryDep = Annotated[LayerRegistry, Depends(get_registry)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
LayerName = Annotated[str, Path(description="Layer name, e.g. alerts", pattern=LAYER_NAME_PATTERN)]
Version = Annotated[str | None, Query(description="Publication version id (default: latest)", pattern=VERSION_PATTERN)]
ItemId = Annotated[
    str | None,
    Query(
        description="Only this STAC item of the publication (one tile's report; default: the whole area)",
        pattern=ITEM_PATTERN,
    ),
]


def resolve_layer(
    layer: LayerName, registry: RegistryDep, version: Version = None, item: ItemId = None
) -> ResolvedLayer:
    """The named layer and version (and item), resolved on the server."""
    return registry.resolve(layer, version, item)


ResolvedLayerDep = Annotated[ResolvedLayer, Depends(resolve_layer)]


def layer_path(resolved: ResolvedLayerDep) -> str:
    """TiTiler path dependency: the file behind a named layer (replaces TiTiler's `?url=`)."""
    return str(resolved.path)
