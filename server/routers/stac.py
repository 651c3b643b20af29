"""The published STAC catalog: JSON with web-map links added at serve time, other files static with ranges."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from catalog.layers import STATUS
from catalog.store import Publication, PublicationIndex
from server.deps import RegistryDep

router = APIRouter(tags=["STAC"])

STAC_PREFIX = "/stac"
WEB_MAP_LAYER = STATUS.name
XYZ_TEMPLATE = "/layers/{layer}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
TILEJSON_PATH = "/layers/{layer}/WebMercatorQuad/tilejson.json"
WMS_PATH = "/wms"


class CatalogFiles(StaticFiles):
    """Static files that never serve hidden names: locks and half-written temp files stay private."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Refuse dot-files and the parent folder, then serve as usual."""
        parts = Path(path).parts
        if any(part.startswith(".") for part in parts):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def catalog_files(stac_dir: Path) -> CatalogFiles:
    """Static app over the STAC folder (created if absent so the server starts before the first run)."""
    stac_dir.mkdir(parents=True, exist_ok=True)
    return CatalogFiles(directory=stac_dir, check_dir=True)


def published_json(root: Path, rel: str) -> Path:
    """The JSON file at `rel` inside the catalog folder; 404 for hidden names, escapes and missing files."""
    parts = PurePosixPath(rel).parts
    if not parts or any(part.startswith(".") or "\\" in part for part in parts):
        raise HTTPException(status_code=404)
    root = root.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status_code=404)
    return path


def _query(version: str | None, item: str | None = None) -> str:
    """The query string that pins a publication version (none for latest), and an item of it."""
    params = []
    if version:
        params.append(f"version={version}")
    if item:
        params.append(f"item={quote(item)}")
    return f"?{'&'.join(params)}" if params else ""


def web_map_links(base: str, version: str | None, time: str | None, item: str | None = None) -> list[dict]:
    """xyz, tilejson and wms links of the alerts layer (web-map-links style), for one version or latest.

    With `item`, the tiles and TileJSON show that item's tile alone (its bounds); WMS layers always cover the area.
    """
    layer = WEB_MAP_LAYER
    which = f"publication {version}" if version else "latest publication"
    what = f"item {item}, {which}" if item else which
    wms: dict = {
        "rel": "wms",
        "href": f"{base}{WMS_PATH}",
        "type": "image/png",
        "title": f"Alerts (WMS, whole area, {which})" if item else f"Alerts (WMS, {which})",
        "wms:layers": [layer],
        "wms:transparent": True,
    }
    if time:
        wms["wms:dimensions"] = {"TIME": time}
    return [
        {
            "rel": "xyz",
            "href": f"{base}{XYZ_TEMPLATE.format(layer=layer)}{_query(version, item)}",
            "type": "image/png",
            "title": f"Alerts (XYZ tiles, {what})",
        },
        {
            "rel": "tilejson",
            "href": f"{base}{TILEJSON_PATH.format(layer=layer)}{_query(version, item)}",
            "type": "application/json",
            "title": f"Alerts (TileJSON, {what})",
        },
        wms,
    ]


def first_publication(index: PublicationIndex, item_id: str) -> Publication | None:
    """The first publication that contains an item (None while it is not published yet)."""
    for publication in index.publications:
        if item_id in publication.items.values():
            return publication
    return None


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, as WMS TIME values are written."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def media_type_of(obj: dict) -> str:
    """Items are GeoJSON; catalogs and collections plain JSON."""
    return "application/geo+json" if obj.get("type") == "Feature" else "application/json"


def add_links(obj: dict, base: str, self_href: str, index: PublicationIndex) -> dict:
    """A served copy of a STAC object: an absolute self link, and web-map links for collections and items."""
    links = [link for link in obj.get("links", []) if link.get("rel") != "self"]
    links.append({"rel": "self", "href": self_href, "type": media_type_of(obj)})
    kind = obj.get("type")
    if kind == "Collection":
        links.extend(web_map_links(base, None, None))
    elif kind == "Feature":
        # Links name only published versions: an item written by a publication still in progress gets none yet.
        # TIME is that publication's datetime, not the item's: the WMS picks the publication at or before TIME,
        # and one whose other tiles are newer is dated after this item, so the item's own time could miss it.
        publication = first_publication(index, obj.get("id", ""))
        if publication:
            links.extend(web_map_links(base, publication.id, iso(publication.datetime), obj.get("id")))
    return {**obj, "links": links}


@router.api_route(f"{STAC_PREFIX}/{{path:path}}.json", methods=["GET", "HEAD"], include_in_schema=False)
def stac_json(path: str, request: Request, registry: RegistryDep) -> Response:
    """A catalog JSON file; STAC objects get absolute self and web-map links built from the request's base URL."""
    file = published_json(registry.layout.root, f"{path}.json")
    raw = file.read_bytes()
    try:
        obj = json.loads(raw)
    except ValueError:
        return Response(raw, media_type="application/json")
    if not isinstance(obj, dict) or obj.get("type") not in ("Catalog", "Collection", "Feature"):
        return Response(raw, media_type="application/json")  # e.g. publications.json: served as written
    base = str(request.base_url).rstrip("/")
    self_href = f"{base}{STAC_PREFIX}/{quote(path)}.json"
    return JSONResponse(add_links(obj, base, self_href, registry.index()), media_type=media_type_of(obj))
