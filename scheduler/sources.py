"""Find acquisitions in a STAC API or a static STAC catalog, as pystac Items."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import Protocol

import pystac
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import box, shape
from urllib3 import Retry

from catalog.atomic import file_version
from scheduler.clock import utc
from scheduler.config import SourceConfig
from scheduler.errors import SourceError
from scheduler.retry import TRANSIENT_STATUS, after_retries, call_with_retries, cause_of

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


def _is_skipped(item: pystac.Item, skip: set[str]) -> bool:
    """Whether the config names this item (by id) or its day (YYYY-MM-DD) in source.skip_acquisitions."""
    day = item.datetime.strftime("%Y-%m-%d") if item.datetime else None
    return item.id in skip or day in skip


def without_skipped(items: list[pystac.Item], cfg: SourceConfig) -> list[pystac.Item]:
    """Drop the items the operator chose to skip (an asset that stays broken), saying so."""
    skip = set(cfg.skip_acquisitions)
    if not skip:
        return items
    kept = [item for item in items if not _is_skipped(item, skip)]
    for item in items:
        if _is_skipped(item, skip):
            key = item.datetime.strftime("%Y-%m-%dT%H:%M:%S") if item.datetime else "?"
            log.info(
                "acquisition %s (item %s) skipped: listed in source.skip_acquisitions",
                key,
                item.id,
                extra={"acquisition": key, "cause": "source.skip_acquisitions"},
            )
    return kept


def _malformed(exc: BaseException) -> bool:
    """A body that is not the JSON promised (a proxy's error page, a cut-off answer): ask again."""
    return isinstance(exc, ValueError | requests.exceptions.JSONDecodeError) or (
        isinstance(exc, APIError) and "json" in str(exc).lower()
    )


class _LoggedRetry(Retry):
    """urllib3's Retry, saying in one warning line what failed and that it is retried."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # noqa: ANN001, ANN201
        """Count the failure (raises MaxRetryError when none is left), then log it."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        cause = cause_of(error) if error is not None else f"HTTP {getattr(response, 'status', '?')}"
        host = f"{_pool.scheme}://{_pool.host}:{_pool.port}" if _pool is not None else ""
        log.warning(
            "STAC API request %s %s%s failed, retry %d (backoff %.2f s): %s",
            method,
            host,
            url,
            len(new.history),
            new.get_backoff_time(),
            cause,
            extra={"cause": cause},
        )
        return new


class StacApiSource:
    """A STAC API searched with pystac-client (bbox, datetime, and a cloud-cover query).

    HTTP-level faults (refused, reset, timeouts, 429/5xx) are retried by the session's urllib3 Retry with backoff;
    a malformed JSON answer is retried around the whole search, with the same policy.
    """

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._client: Client | None = None

    def _stac_io(self) -> StacApiIO:
        """A requests session that retries transient HTTP faults itself (any method: searches are POSTs)."""
        retry = _LoggedRetry(
            total=self.cfg.retries,
            connect=self.cfg.retries,
            read=self.cfg.retries,
            status=self.cfg.retries,
            backoff_factor=self.cfg.backoff_seconds,
            backoff_max=60.0,
            backoff_jitter=self.cfg.backoff_seconds / 2,
            status_forcelist=sorted(TRANSIENT_STATUS),
            allowed_methods=None,
            respect_retry_after_header=True,
        )
        return StacApiIO(timeout=self.cfg.timeout_seconds, max_retries=retry)

    def _open(self) -> Client:
        if self._client is None:
            self._client = Client.open(self.cfg.url, stac_io=self._stac_io(), timeout=self.cfg.timeout_seconds)
        return self._client

    def _search_once(self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime) -> list:
        try:
            search = self._open().search(
                collections=[self.cfg.collection],
                bbox=bbox_4326,
                datetime=f"{_iso(start)}/{_iso(end)}",
                query={"eo:cloud_cover": {"lte": self.cfg.max_cloud_cover}},
                limit=500,
            )
            return list(search.items())
        except ValueError as exc:  # JSON decoders word it as "unexpected end of data"; say what it means
            raise ValueError(f"malformed answer, not the STAC JSON expected: {cause_of(exc)}") from exc

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Search the API; every page is fetched; transient faults are retried, then a SourceError names the cause."""
        span = f"{_iso(start)}/{_iso(end)}"
        try:
            items = call_with_retries(
                lambda: self._search_once(bbox_4326, start, end),
                what=f"STAC API search at {self.cfg.url} for {span}",
                retries=self.cfg.retries,
                backoff_seconds=self.cfg.backoff_seconds,
                retry_if=_malformed,
            )
        except (APIError, OSError, ValueError, requests.RequestException) as exc:
            cause, tries = cause_of(exc), after_retries(self.cfg.retries)
            raise SourceError(
                f"STAC API search at {self.cfg.url} for {span} failed{tries}: {cause}", acquisition=span, cause=cause
            ) from exc
        return without_skipped(sorted(items, key=lambda item: (item.datetime, item.id)), self.cfg)


class StaticCatalogSource:
    """A static catalog on disk; pystac-client cannot search those, so items are filtered here."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._items: list[pystac.Item] | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._parsed: dict[Path, tuple[tuple[int, int, int], pystac.Item]] = {}

    def _all_items(self) -> list[pystac.Item]:
        """Read the catalog's items once per process, again only when catalog.json changes.

        Repeated searches (every tile, every scheduler run) only filter the parsed items. A change is catalog.json's
        modification time, size or inode: an atomic replace within one clock tick is still seen. Then only the item
        files that are new or changed are parsed again: a scheduler run after one new acquisition reads one item.
        """
        path = Path(self.cfg.catalog)
        with self._lock:
            stamp = _stamp(path, "static catalog")
            if self._items is None or stamp != self._stamp:
                try:
                    items = self._read_items(path)
                except SourceError:
                    raise
                except Exception as exc:  # pystac and json raise many kinds on bad JSON or links
                    raise SourceError(f"static catalog {path} is unreadable: {exc}") from exc
                self._items, self._stamp = items, stamp
                log.info("static catalog %s: %d items in collection %s", path, len(items), self.cfg.collection)
            return self._items

    def _read_items(self, root: Path) -> list[pystac.Item]:
        """The collection's items, reusing the parsed ones whose file has not changed."""
        parsed: dict[Path, tuple[tuple[int, int, int], pystac.Item]] = {}
        for item_path in _item_files(root):
            stamp = _stamp(item_path, "static catalog item")
            known = self._parsed.get(item_path)
            if known is not None and known[0] == stamp:
                parsed[item_path] = known
                continue
            item = pystac.Item.from_file(str(item_path))
            item.make_asset_hrefs_absolute()
            parsed[item_path] = (stamp, item)
        self._parsed = parsed  # items no longer linked are forgotten
        return [item for _, item in parsed.values() if item.collection_id == self.cfg.collection]

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
        return without_skipped(sorted(found, key=lambda item: (item.datetime, item.id)), self.cfg)


def _stamp(path: Path, what: str) -> tuple[int, int, int]:
    """The file's version (catalog.atomic.file_version); a SourceError naming `what` if it cannot be read."""
    try:
        return file_version(path)
    except OSError as exc:
        raise SourceError(f"{what} {path} cannot be read: {exc}") from exc


def _item_files(catalog: Path) -> list[Path]:
    """The item files a static catalog links, through its child catalogs and collections, in link order."""
    files: list[Path] = []
    seen: set[Path] = set()
    pending = [catalog.resolve()]
    while pending:
        node = pending.pop(0)
        if node in seen:
            continue
        seen.add(node)
        for link in json.loads(node.read_text()).get("links", []):
            rel, href = link.get("rel"), link.get("href") or ""
            if rel not in ("item", "child"):
                continue
            if "://" in href and not href.startswith("file://"):
                raise SourceError(f"static catalog {catalog}: link {href} is not a file on this machine")
            target = (node.parent / href.removeprefix("file://")).resolve()
            if rel == "child":
                pending.append(target)
            elif target not in seen:
                seen.add(target)
                files.append(target)
    return files


def source_from_config(cfg: SourceConfig) -> ImagerySource:
    """Build the source the config names."""
    return StacApiSource(cfg) if cfg.kind == "stac-api" else StaticCatalogSource(cfg)
