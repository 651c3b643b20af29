"""Find acquisitions in a STAC API or a static STAC catalog, as pystac Items."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Protocol

import pystac
from pystac_client import Client
from pystac_client.exceptions import APIError
from shapely.geometry import box, shape

from scheduler.clock import utc
from scheduler.config import SourceConfig
from scheduler.errors import SourceError

log = logging.getLogger(__name__)


class ImagerySource(Protocol):
    """Anything that lists the acquisitions over a bbox and time span."""

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Items intersecting the bbox with start <= datetime <= end, cloud cover within the limit."""
        ...


def _iso(value: dt.datetime) -> str:
    """RFC 3339 in UTC, as STAC APIs expect."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


class StacApiSource:
    """A STAC API searched with pystac-client (bbox, datetime, and a cloud-cover query)."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._client: Client | None = None

    def _open(self) -> Client:
        if self._client is None:
            try:
                self._client = Client.open(self.cfg.url, timeout=self.cfg.timeout_s)
            except Exception as exc:  # requests, JSON and API errors all mean the same to the operator
                raise SourceError(f"STAC API {self.cfg.url} cannot be opened: {exc}") from exc
        return self._client

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Search the API; every page is fetched."""
        try:
            search = self._open().search(
                collections=[self.cfg.collection],
                bbox=bbox_4326,
                datetime=f"{_iso(start)}/{_iso(end)}",
                query={"eo:cloud_cover": {"lte": self.cfg.max_cloud_cover}},
                limit=500,
            )
            items = list(search.items())
        except (APIError, OSError, ValueError) as exc:
            raise SourceError(f"STAC API search at {self.cfg.url} failed: {exc}") from exc
        return sorted(items, key=lambda item: (item.datetime, item.id))


class StaticCatalogSource:
    """A static catalog on disk; pystac-client cannot search those, so items are filtered here."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._items: list[pystac.Item] | None = None
        self._mtime: float | None = None

    def _all_items(self) -> list[pystac.Item]:
        """Read the catalog's items once, again only when catalog.json changes."""
        path = Path(self.cfg.catalog)
        with self._lock:
            try:
                mtime = path.stat().st_mtime
            except OSError as exc:
                raise SourceError(f"static catalog {path} cannot be read: {exc}") from exc
            if self._items is None or mtime != self._mtime:
                try:
                    catalog = pystac.Catalog.from_file(str(path))
                    items = [
                        item for item in catalog.get_items(recursive=True) if item.collection_id == self.cfg.collection
                    ]
                except Exception as exc:  # pystac raises many kinds on bad JSON or links
                    raise SourceError(f"static catalog {path} is unreadable: {exc}") from exc
                for item in items:
                    item.make_asset_hrefs_absolute()
                self._items, self._mtime = items, mtime
                log.info("static catalog %s: %d items in collection %s", path, len(items), self.cfg.collection)
            return self._items

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Filter the catalog's items like a STAC API search would."""
        area = box(*bbox_4326)
        start, end = utc(start), utc(end)
        found = []
        for item in self._all_items():
            when = item.datetime
            if when is None or not (start <= utc(when) <= end):
                continue
            if item.properties.get("eo:cloud_cover", 0) > self.cfg.max_cloud_cover:
                continue
            if item.geometry is not None and not shape(item.geometry).intersects(area):
                continue
            found.append(item)
        return sorted(found, key=lambda item: (item.datetime, item.id))


def source_from_config(cfg: SourceConfig) -> ImagerySource:
    """Build the source the config names."""
    return StacApiSource(cfg) if cfg.kind == "stac-api" else StaticCatalogSource(cfg)
