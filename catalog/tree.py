"""The catalog's link structure: the collection links one catalog per month of item data time, each month its items.

So no JSON file grows with the age of the catalog: a month catalog holds the items of one month (tiles x updates),
the collection one link per month (and retention drops emptied months). Item files stay in items/<id>/; an item's
parent is its month catalog. Writes go children first (a month catalog is complete before the collection links
it) and removals parents first (the collection drops a month's link before its folder goes), so a reader following
links never meets a missing file. A collection of the older flat layout (item links in collection.json) is
migrated by the next publication: its items move into their months, their files untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pystac

from catalog import atomic
from catalog.store import COLLECTION_ID, CatalogLayout

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
ITEM_TYPE = "application/geo+json"


def month_of(value: dt.datetime) -> str:
    """The month ("2024-03", UTC) an item of this data time belongs to."""
    return value.astimezone(dt.UTC).strftime("%Y-%m")


def item_month(item: dict) -> str:
    """The month of an item JSON, from its datetime."""
    return month_of(dt.datetime.fromisoformat(item["properties"]["datetime"]))


def item_links(month: str) -> list[dict]:
    """The links an item JSON of that month carries (relative to items/<id>/)."""
    return [
        {"rel": "root", "href": "../../../catalog.json", "type": JSON_TYPE},
        {"rel": "parent", "href": f"../../months/{month}/catalog.json", "type": JSON_TYPE},
        {"rel": "collection", "href": "../../collection.json", "type": JSON_TYPE},
    ]


def _month_link(month: str) -> dict:
    """The collection's link to a month catalog."""
    return {"rel": "child", "href": f"./months/{month}/catalog.json", "type": JSON_TYPE, "title": month}


def _item_link(item_id: str) -> dict:
    """A month catalog's link to an item."""
    return {"rel": "item", "href": f"../../items/{item_id}/{item_id}.json", "type": ITEM_TYPE, "title": item_id}


def _linked_id(link: dict) -> str:
    """The item id an item link names (its file is <id>.json)."""
    return Path(link["href"]).stem


def _month_catalog(month: str) -> dict:
    """A month catalog before any item is linked."""
    year, number = (int(part) for part in month.split("-"))
    name = dt.date(year, number, 1).strftime("%B %Y")
    return {
        "type": "Catalog",
        "stac_version": pystac.get_stac_version(),
        "id": f"{COLLECTION_ID}-{month}",
        "title": f"Alerts of {name}",
        "description": f"The alert items whose data time (last absorbed acquisition) falls in {name} (UTC).",
        "links": [
            {"rel": "root", "href": "../../../catalog.json", "type": JSON_TYPE},
            {"rel": "parent", "href": "../../collection.json", "type": JSON_TYPE},
        ],
    }


def _read(path: Path) -> dict:
    """A catalog JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def _child_month(link: dict) -> str | None:
    """The month a collection link leads to (None for other links)."""
    return Path(link["href"]).parent.name if link.get("rel") == "child" else None


def _months(collection: dict) -> list[str]:
    """The months the collection links."""
    return [month for month in map(_child_month, collection["links"]) if month]


def _flat_items(layout: CatalogLayout, collection: dict) -> list[dict]:
    """The items an older flat collection links directly (an unreadable one is logged and left out)."""
    items = []
    for link in collection["links"]:
        if link.get("rel") != "item":
            continue
        path = layout.collection_dir / link["href"]
        try:
            items.append(_read(path))
        except (OSError, ValueError) as exc:
            log.warning("catalog migration: item link %s of the collection is dropped: %s", link["href"], exc)
    return items


def link_items(layout: CatalogLayout, collection: dict, items: Iterable[dict]) -> tuple[dict, list[dict]]:
    """Link items from their month catalogs (written now) and return the collection linking every month.

    Item links of the flat layout move into their months too; those items are returned (their metadata still
    counts for the collection's extent and summaries).
    """
    migrated = _flat_items(layout, collection)
    by_month: dict[str, list[str]] = defaultdict(list)
    for item in (*migrated, *items):
        by_month[item_month(item)].append(item["id"])
    for month, ids in sorted(by_month.items()):
        path = layout.month_path(month)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_temps(path.parent)
        catalog = _read(path) if path.exists() else _month_catalog(month)
        known = {_linked_id(link) for link in catalog["links"] if link.get("rel") == "item"}
        added = [item_id for item_id in dict.fromkeys(ids) if item_id not in known]
        if added or not path.exists():
            catalog["links"].extend(_item_link(item_id) for item_id in added)
            atomic.write_json(path, catalog)
    months = sorted({*_months(collection), *by_month})
    others = [link for link in collection["links"] if link.get("rel") not in ("item", "child")]
    if migrated:
        log.info("catalog migration: %d item link(s) of the collection moved into month catalogs", len(migrated))
    return {**collection, "links": [*others, *map(_month_link, months)]}, migrated


def unlink_items(layout: CatalogLayout, item_ids: set[str]) -> list[Path]:
    """Remove the links to items (month catalogs first, then the collection); return the emptied months' folders.

    An emptied month loses its link from the collection; its folder is left for the caller to delete once
    nothing points at it.
    """
    path = layout.collection_path
    if not item_ids or not path.exists():
        return []
    collection = _read(path)
    links = [link for link in collection["links"] if not (link.get("rel") == "item" and _linked_id(link) in item_ids)]
    emptied = []
    for month in _months(collection):
        month_path = layout.month_path(month)
        try:
            catalog = _read(month_path)
        except FileNotFoundError:
            continue
        kept = [link for link in catalog["links"] if not (link.get("rel") == "item" and _linked_id(link) in item_ids)]
        if len(kept) == len(catalog["links"]):
            continue
        if any(link.get("rel") == "item" for link in kept):
            atomic.remove_temps(month_path.parent)
            atomic.write_json(month_path, {**catalog, "links": kept})
        else:
            emptied.append(month_path.parent)
            links = [link for link in links if _child_month(link) != month]
    if links != collection["links"]:
        atomic.write_json(path, {**collection, "links": links})
    return emptied


def linked_items(layout: CatalogLayout) -> dict[str, Path]:
    """Every item the collection leads to (through its months, or directly in the flat layout): id -> JSON path."""
    try:
        collection = _read(layout.collection_path)
    except FileNotFoundError:
        return {}
    found = {}
    parents = [(layout.collection_dir, collection)]
    for month in _months(collection):
        parents.append((layout.month_path(month).parent, _read(layout.month_path(month))))
    for folder, obj in parents:
        for link in obj["links"]:
            if link.get("rel") == "item":
                found[_linked_id(link)] = (folder / link["href"]).resolve()
    return found
