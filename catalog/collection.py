"""The alerts collection's metadata that follows its items: spatial and temporal extent, and summaries."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension

from catalog.encoding import classification_classes

# Item properties summarised as the sorted list of their distinct values (what a STAC browser offers as filters).
LISTED_PROPERTIES = ("nrt:algorithm", "nrt:index", "proj:code", "gsd")
# The extensions whose fields the collection's summaries and item_assets use.
COLLECTION_EXTENSIONS = (ProjectionExtension.get_schema_uri(), RasterExtension.get_schema_uri())


def _iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_interval(item: dict) -> tuple[dt.datetime, dt.datetime]:
    """The time an item's data covers: start_datetime..end_datetime, else its datetime."""
    properties = item["properties"]
    instant = properties.get("datetime")
    start, end = properties.get("start_datetime") or instant, properties.get("end_datetime") or instant
    return dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)


def widen(collection: dict, items: Sequence[dict]) -> dict:
    """The collection with its extent covering `items` too and their values in its summaries."""
    if not items:
        return collection
    bboxes = [item["bbox"] for item in items] + collection["extent"]["spatial"]["bbox"][:1]
    bboxes = [b for b in bboxes if all(math.isfinite(v) for v in b)]
    spatial = [
        [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes), max(b[3] for b in bboxes)]
    ]
    # The collection covers every item's whole interval: items summarise data from the history's start on.
    times = [dt.datetime.fromisoformat(t) for t in collection["extent"]["temporal"]["interval"][0] if t]
    times += [t for item in items for t in item_interval(item)]
    temporal = [[_iso(min(times)), _iso(max(times))]]
    summaries = dict(collection.get("summaries") or {})
    for key in LISTED_PROPERTIES:
        values = {*summaries.get(key, []), *(item["properties"].get(key) for item in items)} - {None}
        if values:
            summaries[key] = sorted(values)
    summaries["classification:classes"] = classification_classes()
    extensions = list(collection.get("stac_extensions", []))
    extensions += [uri for uri in COLLECTION_EXTENSIONS if uri not in extensions]
    return {
        **collection,
        "stac_extensions": extensions,
        "extent": {"spatial": {"bbox": spatial}, "temporal": {"interval": temporal}},
        "summaries": summaries,
    }
