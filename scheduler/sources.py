"""Find acquisitions in a STAC API or a static STAC catalog, as pystac Items."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
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
from scheduler.errors import NothingFoundError, SourceError
from scheduler.keys import key_text, utc_key
from scheduler.retry import TRANSIENT_STATUS, after_retries, call_with_retries, cause_of

log = logging.getLogger(__name__)


class ImagerySource(Protocol):
    """Anything that lists the acquisitions over a bbox and time span."""

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Items intersecting the bbox with start <= datetime <= end, cloud cover within the limit."""
        ...


@dataclass(frozen=True)
class UnreadableItem:
    """An item a search found but could not read: where it is, why, and its id and time where its text tells."""

    where: str  # "static catalog item <file>" or "item <id> of the STAC API search at <url>"
    reason: str
    item_id: str | None = None
    when: str | None = None  # the acquisition time, YYYY-MM-DDTHH:MM:SS (UTC), when the text still says it

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class Found(list):
    """A search's items (a list of pystac Items), with the items it found but could not read."""

    def __init__(self, items: Iterable[pystac.Item] = (), unreadable: Iterable[UnreadableItem] = ()) -> None:
        super().__init__(items)
        self.unreadable: list[UnreadableItem] = list(unreadable)


def unreadable_in(items: list[pystac.Item]) -> list[UnreadableItem]:
    """The unreadable items a search reported beside `items` (none for a plain list, e.g. a source given in code)."""
    return items.unreadable if isinstance(items, Found) else []


def nothing_found(
    cfg: SourceConfig, what: str, bbox_4326: tuple[float, ...], start: dt.datetime, end: dt.datetime
) -> NothingFoundError:
    """The error of a search that found nothing for `what` (a tile, the area), naming everything it asked for."""
    where = f"STAC API {cfg.url}" if cfg.kind == "stac-api" else f"static catalog {cfg.catalog}"
    corners = ", ".join(f"{v:.5f}" for v in bbox_4326)
    return NothingFoundError(
        f"{what}: no acquisitions in collection {cfg.collection!r} of {where} over bbox [{corners}] (lon/lat) "
        f"from {utc(start):%Y-%m-%d} to {utc(end):%Y-%m-%d} with eo:cloud_cover <= {cfg.max_cloud_cover:g}",
        acquisition=f"{_iso(start)}/{_iso(end)}",
        cause="no acquisitions",
    )


def area_bbox_4326(bboxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """The lon/lat box around several boxes (the tiles' of a run)."""
    return (
        min(b[0] for b in bboxes),
        min(b[1] for b in bboxes),
        max(b[2] for b in bboxes),
        max(b[3] for b in bboxes),
    )


def _iso(value: dt.datetime) -> str:
    """RFC 3339 in UTC, as STAC APIs expect."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_skipped(item: pystac.Item, skip: set[str]) -> bool:
    """Whether the config names this item (by id) or its day (YYYY-MM-DD) in source.skip_acquisitions."""
    day = item.datetime.strftime("%Y-%m-%d") if item.datetime else None
    return item.id in skip or day in skip


def without_skipped(items: list[pystac.Item], cfg: SourceConfig, unreadable: Iterable[UnreadableItem] = ()) -> Found:
    """Drop the items the operator chose to skip (an asset that stays broken, an unreadable item), saying so."""
    skip = set(cfg.skip_acquisitions)
    unread: list[UnreadableItem] = []
    for bad in unreadable:
        if not _names_skipped(bad, skip):
            unread.append(bad)
            continue
        log.info("%s skipped: listed in source.skip_acquisitions", bad.where, extra={"cause": bad.reason})
    if not skip:
        return Found(items, unread)
    kept = [item for item in items if not _is_skipped(item, skip)]
    for item in items:
        if _is_skipped(item, skip):
            key = key_text(item.datetime) if item.datetime else "?"
            log.info(
                "acquisition %s (item %s) skipped: listed in source.skip_acquisitions",
                key,
                item.id,
                extra={"acquisition": key, "cause": "source.skip_acquisitions"},
            )
    return Found(kept, unread)


def _names_skipped(bad: UnreadableItem, skip: set[str]) -> bool:
    """Whether source.skip_acquisitions names an unreadable item by its id or its day."""
    return bool(skip) and (bad.item_id in skip or (bad.when is not None and bad.when[:10] in skip))


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

    def _search_once(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> tuple[list[pystac.Item], list[UnreadableItem]]:
        """Every page's items; an item that is not valid STAC is set apart, the rest of its page is kept."""
        try:
            client = self._open()
            search = client.search(
                collections=[self.cfg.collection],
                bbox=bbox_4326,
                datetime=f"{_iso(start)}/{_iso(end)}",
                query={"eo:cloud_cover": {"lte": self.cfg.max_cloud_cover}},
                limit=500,
            )
            items, unreadable = [], []
            for data in search.items_as_dicts():
                try:
                    items.append(pystac.Item.from_dict(data, root=client, preserve_dict=False))
                except Exception as exc:  # pystac raises STACError, KeyError, TypeError... on an invalid item
                    unreadable.append(self._unreadable(data, exc))
            return items, unreadable
        except ValueError as exc:  # JSON decoders word it as "unexpected end of data"; say what it means
            raise ValueError(f"malformed answer, not the STAC JSON expected: {cause_of(exc)}") from exc

    def _unreadable(self, data: object, exc: BaseException) -> UnreadableItem:
        """An invalid item of a search's page, named by its id, logged."""
        fields = data if isinstance(data, dict) else {}
        item_id = fields.get("id") if isinstance(fields.get("id"), str) else None
        properties = fields.get("properties") if isinstance(fields.get("properties"), dict) else {}
        bad = UnreadableItem(
            f"item {item_id or '(without id)'} of the STAC API search at {self.cfg.url}",
            _reason(exc),
            item_id,
            _key_of(properties.get("datetime")),
        )
        log.warning("%s is not a valid STAC item, skipped: %s", bad.where, bad.reason, extra={"cause": bad.reason})
        return bad

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Search the API; every page is fetched; transient faults are retried, then a SourceError names the cause."""
        span = f"{_iso(start)}/{_iso(end)}"
        try:
            items, unreadable = call_with_retries(
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
        return without_skipped(sorted(items, key=lambda item: (item.datetime, item.id)), self.cfg, unreadable)


def _reason(exc: BaseException) -> str:
    """Why an item could not be read, in one line (a bare KeyError says only the key)."""
    text = cause_of(exc)
    return f"missing field {text}" if isinstance(exc, KeyError) else text


def _key_of(value: object) -> str | None:
    """An item's datetime text as an acquisition time (YYYY-MM-DDTHH:MM:SS, UTC), None if it is none."""
    try:
        return utc_key(dt.datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


class StaticCatalogSource:
    """A static catalog on disk; pystac-client cannot search those, so items are filtered here."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._items: list[pystac.Item] | None = None
        self._unreadable: list[UnreadableItem] = []
        self._stamp: tuple[int, int, int] | None = None
        self._parsed: dict[Path, tuple[tuple[int, int, int], pystac.Item]] = {}

    def _all_items(self) -> tuple[list[pystac.Item], list[UnreadableItem]]:
        """Read the catalog's items once per process, again only when catalog.json changes or an item was unreadable.

        Repeated searches (every tile, every scheduler run) only filter the parsed items. A change is catalog.json's
        modification time, size or inode: an atomic replace within one clock tick is still seen. Then only the item
        files that are new or changed are parsed again: a scheduler run after one new acquisition reads one item.
        An unreadable item is skipped (logged, reported with the search) and read again by the next search.
        """
        path = Path(self.cfg.catalog)
        with self._lock:
            stamp = _stamp(path, "static catalog")
            if self._items is None or stamp != self._stamp or self._unreadable:
                try:
                    items, unreadable = self._read_items(path)
                except SourceError:
                    raise
                except Exception as exc:  # a link that is not an object, a href that is not a string...
                    raise SourceError(f"static catalog {path} is unreadable: {cause_of(exc)}") from exc
                self._items, self._unreadable, self._stamp = items, unreadable, stamp
                log.info("static catalog %s: %d items in collection %s", path, len(items), self.cfg.collection)
            return self._items, self._unreadable

    def _read_items(self, root: Path) -> tuple[list[pystac.Item], list[UnreadableItem]]:
        """The collection's items, reusing the parsed ones whose file has not changed; and the unreadable ones."""
        parsed: dict[Path, tuple[tuple[int, int, int], pystac.Item]] = {}
        unreadable: list[UnreadableItem] = []
        for item_path in _item_files(root):
            stamp = _stamp(item_path, "static catalog item")
            known = self._parsed.get(item_path)
            if known is not None and known[0] == stamp:
                parsed[item_path] = known
                continue
            try:
                item = _read_item(item_path)
            except _Unreadable as bad:
                if bad.collection in (None, self.cfg.collection):
                    unreadable.append(bad.item)
                    log.warning(
                        "%s is unreadable, skipped (read again at the next search): %s",
                        bad.item.where,
                        bad.item.reason,
                        extra={"acquisition": bad.item.when, "cause": bad.item.reason},
                    )
                continue
            parsed[item_path] = (stamp, item)
        self._parsed = parsed  # items no longer linked are forgotten
        items = [item for _, item in parsed.values() if item.collection_id == self.cfg.collection]
        return items, unreadable

    def search(
        self, bbox_4326: tuple[float, float, float, float], start: dt.datetime, end: dt.datetime
    ) -> list[pystac.Item]:
        """Filter the catalog's items like a STAC API search would; unreadable items of the period go with them."""
        area = box(*bbox_4326)
        start, end = utc(start), utc(end)
        items, unreadable = self._all_items()
        found = []
        for item in items:
            when = item.datetime
            if when is None or not (start <= utc(when) <= end):
                continue
            if item.properties.get("eo:cloud_cover", 0) > self.cfg.max_cloud_cover:
                continue
            if item.geometry is not None and not shape(item.geometry).intersects(area):
                continue
            found.append(item)
        # An unreadable item's footprint is unknown: it concerns every tile, within the period when it is dated.
        period = (key_text(start), key_text(end))
        concerned = [bad for bad in unreadable if bad.when is None or period[0] <= bad.when <= period[1]]
        return without_skipped(sorted(found, key=lambda item: (item.datetime, item.id)), self.cfg, concerned)


class _Unreadable(Exception):
    """An item file that is not a valid STAC item."""

    def __init__(self, item: UnreadableItem, collection: str | None) -> None:
        super().__init__(str(item))
        self.item, self.collection = item, collection


# What a cut-off or otherwise broken item file may still say about itself.
_TEXT_FIELDS = {name: re.compile(rf'"{name}"\s*:\s*"([^"]*)"') for name in ("id", "datetime", "collection")}


def _read_item(path: Path) -> pystac.Item:
    """One item file, its asset hrefs made absolute; _Unreadable naming the file if it is not a valid item."""
    try:
        item = pystac.Item.from_file(str(path))
        item.make_asset_hrefs_absolute()
        return item
    except Exception as exc:  # json and pystac raise many kinds on a broken item
        reason = f"not JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else _reason(exc)
        said = _what_the_text_says(path)
        bad = UnreadableItem(f"static catalog item {path}", reason, said.get("id"), _key_of(said.get("datetime")))
        raise _Unreadable(bad, said.get("collection")) from exc


def _what_the_text_says(path: Path) -> dict[str, str]:
    """The id, datetime and collection a broken item file still spells out (a cut-off file often does)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {name: match.group(1) for name, pattern in _TEXT_FIELDS.items() if (match := pattern.search(text))}


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
        try:
            links = json.loads(node.read_text(encoding="utf-8")).get("links", [])
        except (OSError, ValueError, AttributeError) as exc:  # the catalog's structure itself: nothing to skip to
            raise SourceError(f"static catalog {node} is unreadable: {cause_of(exc)}") from exc
        for link in links:
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


# ESA's product names carry the processing baseline as _Nxxyy_ (S2A_MSIL2A_20200714T115221_N0214_R123_...).
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")
# Where providers put the baseline, or the product name holding it: Planetary Computer and Earth Search v1, Earth
# Search v0's product id; the item id last (CDSE's is the product name). Not processing:version: other missions use it.
_BASELINE_FIELDS = ("s2:processing_baseline", "s2:product_uri", "sentinel:product_id")


def processing_baseline(item: pystac.Item) -> str | None:
    """A Sentinel-2 item's processing baseline as "NN.NN", from its metadata or its product name; None if unsaid."""
    for name in _BASELINE_FIELDS:
        value = item.properties.get(name)
        if isinstance(value, str) and re.fullmatch(r"\d{2}\.\d{2}", value):
            return value
        if isinstance(value, str) and (match := _BASELINE_IN_NAME.search(value)):
            return f"{match.group(1)}.{match.group(2)}"
    match = _BASELINE_IN_NAME.search(item.id)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def source_from_config(cfg: SourceConfig) -> ImagerySource:
    """Build the source the config names."""
    return StacApiSource(cfg) if cfg.kind == "stac-api" else StaticCatalogSource(cfg)
