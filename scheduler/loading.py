"""Load items onto a tile's grid with odc-stac, mask clouds and compute the vegetation index."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from odc.stac import load as odc_load

from scheduler.clock import utc
from scheduler.config import INDEX_BANDS, Config, SourceConfig
from scheduler.errors import SourceError
from scheduler.grid import Tile
from scheduler.retry import after_retries, call_with_retries, cause_of

log = logging.getLogger(__name__)


def compute_index(name: str, bands: dict[str, xr.DataArray]) -> xr.DataArray:
    """Compute a normalised-difference style index from reflectances (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "ndvi":
            value = (bands["nir"] - bands["red"]) / (bands["nir"] + bands["red"])
        elif name == "nbr":
            value = (bands["nir"] - bands["swir22"]) / (bands["nir"] + bands["swir22"])
        elif name == "ndmi":
            value = (bands["nir"] - bands["swir16"]) / (bands["nir"] + bands["swir16"])
        elif name == "evi":
            value = 2.5 * (bands["nir"] - bands["red"]) / (bands["nir"] + 6 * bands["red"] - 7.5 * bands["blue"] + 1)
        else:  # the config's Literal makes this unreachable; kept so a new name fails loudly
            raise ValueError(f"unknown index {name}")
    # nrt's fit is NaN-aware but not inf-aware: a zero denominator must become NaN.
    return value.where(np.isfinite(value)).astype(np.float32)


def acquisition_key(time: np.datetime64) -> str:
    """The identity of an acquisition: its solar-day timestamp, ISO 8601 to the second."""
    return pd.Timestamp(time).strftime("%Y-%m-%dT%H:%M:%S")


def item_key(item: pystac.Item) -> str:
    """acquisition_key of an item's own datetime (a solar day's key is that of its earliest item)."""
    when = item.datetime or dt.datetime.min
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") if when.tzinfo else when.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Acquisition:
    """The items of one solar day: what odc-stac fuses into one time step, and the key it will carry."""

    key: str
    items: list[pystac.Item]

    @property
    def ids(self) -> str:
        """The item ids, for messages."""
        return ", ".join(item.id for item in self.items)


def _nominal(item: pystac.Item) -> dt.datetime:
    """An item's time as odc-stac takes it: datetime, else start_datetime."""
    return utc(item.datetime or item.common_metadata.start_datetime)


def _solar_day_at(item: pystac.Item, lon: float) -> dt.date:
    """The solar day odc-stac groups an item into (its offset is snapped to whole hours, as odc-stac does)."""
    return (_nominal(item) + dt.timedelta(seconds=int(lon / 15) * 3600)).date()


def group_acquisitions(items: list[pystac.Item], tile: Tile) -> list[Acquisition]:
    """Items grouped as the loader groups them onto this tile (solar day at the tile's longitude), oldest first."""
    ((lon, _),) = tile.geobox.extent.centroid.to_crs("epsg:4326").points
    groups: dict[dt.date, list[pystac.Item]] = {}
    for item in sorted(items, key=lambda i: (_nominal(i), i.id)):
        groups.setdefault(_solar_day_at(item, lon), []).append(item)
    # The loaded time of a group is its earliest item's (odc-stac sorts each group by time, then id).
    return [Acquisition(_nominal(group[0]).strftime("%Y-%m-%dT%H:%M:%S"), group) for _, group in sorted(groups.items())]


def batches(acquisitions: list[Acquisition], size: int) -> list[list[pystac.Item]]:
    """Consecutive acquisitions, `size` at a time, so a load holds at most `size` dates (never half a day)."""
    return [
        [item for acq in acquisitions[i : i + size] for item in acq.items] for i in range(0, len(acquisitions), size)
    ]


@dataclass
class PendingItems:
    """What a tile still has to absorb, and what came too late to be absorbed."""

    todo: list[Acquisition]
    late: list[Acquisition]


def pending_items(items: list[pystac.Item], tile: Tile, absorbed: set[str], last: str) -> PendingItems:
    """Drop acquisitions already absorbed (not read again); set apart those older than the last absorbed one."""
    todo: list[Acquisition] = []
    late: list[Acquisition] = []
    for acq in group_acquisitions(items, tile):
        if acq.key in absorbed:
            continue
        if acq.key <= last:
            late.append(acq)
        else:
            todo.append(acq)
    return PendingItems(todo, late)


class AcquisitionError(SourceError):
    """One acquisition could not be read after the retries; the acquisitions before it were."""

    def __init__(self, message: str, *, tile: str, acquisition: str, items: str, cause: str) -> None:
        super().__init__(message, acquisition=acquisition, cause=cause)
        self.tile, self.items = tile, items
        self.loaded: xr.DataArray | None = None


class AssetReadError(OSError):
    """An asset could not be read (HTTP error, truncated or invalid file); an OSError, so it is retried."""


class _OdcErrors(logging.Filter):
    """Takes odc's "Failed to load <asset>" records of this thread: the asset goes into our error instead."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.assets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop (and remember) this thread's load failures; let everything else through."""
        if record.thread != self.thread or not str(record.msg).startswith("Failed to load"):
            return True
        self.assets.append(str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?")
        return False


@contextlib.contextmanager
def _odc_errors() -> Iterator[_OdcErrors]:
    """Catch odc-stac's own error lines during a load (they name neither tile nor acquisition)."""
    logger = logging.getLogger("odc.loader._rio")
    errors = _OdcErrors()
    logger.addFilter(errors)
    try:
        yield errors
    finally:
        logger.removeFilter(errors)


def gdal_options(src: SourceConfig, *, fresh: bool = False) -> dict[str, object]:
    """GDAL settings for reading assets: bounded HTTP waits; `fresh` forgets what /vsicurl/ cached."""
    seconds = max(1, math.ceil(src.timeout_seconds))
    options: dict[str, object] = {
        "GDAL_HTTP_TIMEOUT": seconds,
        "GDAL_HTTP_CONNECTTIMEOUT": seconds,
        # Our own retry policy decides; GDAL's retries would multiply with it.
        "GDAL_HTTP_MAX_RETRY": 0,
        # Without it GDAL lists the asset's "folder" first: slow at best, on some servers it hangs until timeout.
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }
    if fresh:
        # /vsicurl/ remembers a 404 or a file size for the life of the process; a retry, and every read of a
        # long-running scheduler after a failure, must see the server's current answer.
        options["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/"
    return options


def load_index(items: list[pystac.Item], tile: Tile, cfg: Config) -> xr.DataArray:
    """Return the masked index as a (time, y, x) float32 DataArray on the tile grid, time sorted."""
    return load_index_and_bands(items, tile, cfg)[0]


def load_new_index(items: list[pystac.Item], tile: Tile, cfg: Config) -> xr.DataArray:
    """Like load_index; when an acquisition stays unreadable, raise AcquisitionError carrying those before it.

    The fast path reads everything at once; only if that fails for good is each solar day read on its own, oldest
    first, to find the bad acquisition (so a broken asset costs one tile's progress from that date, no more).
    """
    try:
        return load_index(items, tile, cfg)
    except SourceError as batch_error:
        acquisitions = group_acquisitions(items, tile)
        if len(acquisitions) <= 1:
            if acquisitions:
                raise _acquisition_error(tile, acquisitions[0], batch_error, cfg) from batch_error
            raise
    loaded: list[xr.DataArray] = []
    for acq in acquisitions:
        try:
            loaded.append(load_index(acq.items, tile, cfg))
        except SourceError as exc:
            error = _acquisition_error(tile, acq, exc, cfg)
            error.loaded = xr.concat(loaded, dim="time") if loaded else None
            raise error from exc
    return xr.concat(loaded, dim="time")  # the batch failed but every day alone was read: a transient fault


def _acquisition_error(tile: Tile, acq: Acquisition, exc: BaseException, cfg: Config) -> AcquisitionError:
    cause = cause_of(exc.__cause__ or exc)
    tries = after_retries(cfg.source.retries)
    return AcquisitionError(
        f"tile {tile.id}: acquisition {acq.key} (item {acq.ids}) cannot be read{tries}: {cause}",
        tile=tile.id,
        acquisition=acq.key,
        items=acq.ids,
        cause=cause,
    )


def load_index_and_bands(
    items: list[pystac.Item], tile: Tile, cfg: Config, extra_roles: tuple[str, ...] = ()
) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """The masked index plus the masked reflectances of `extra_roles` (e.g. for CCDC's screening)."""
    src = cfg.source
    roles = tuple(dict.fromkeys(INDEX_BANDS[cfg.index.name] + extra_roles))
    assets = [src.bands[role] for role in roles]
    if src.mask_band:
        assets.append(src.mask_band)
    attempts = 0

    def read() -> xr.Dataset:
        nonlocal attempts
        attempts += 1
        with warnings.catch_warnings(), rasterio.Env(**gdal_options(src, fresh=attempts > 1)), _odc_errors() as failed:
            warnings.simplefilter("ignore")
            try:
                return _odc_load()
            except Exception as exc:
                if failed.assets:  # odc said which asset; GDAL's message alone does not
                    raise AssetReadError(f"asset {failed.assets[-1]}: {cause_of(exc)}") from exc
                raise

    def _odc_load() -> xr.Dataset:
        return odc_load(
            items,
            bands=assets,
            geobox=tile.geobox,
            groupby="solar_day",
            resampling="nearest",
            chunks=None,
            fail_on_error=True,
        )

    span = _span(items)
    try:
        ds = call_with_retries(
            read,
            what=f"tile {tile.id}: reading {span}",
            retries=src.retries,
            backoff_seconds=src.backoff_seconds,
            extra={"tile": tile.id, "acquisition": span},
        )
    except Exception as exc:  # rasterio, odc and HTTP errors: the message names the asset
        cause = cause_of(exc)
        raise SourceError(f"tile {tile.id}: loading {span} failed: {cause}", acquisition=span, cause=cause) from exc
    ds = ds.sortby("time")
    clear = ds[src.mask_band].isin(src.mask_valid) if src.mask_band else None
    bands = {}
    for role in roles:
        raw = ds[src.bands[role]]
        value = raw.astype(np.float32)
        if src.nodata is not None:
            value = value.where(raw != src.nodata)
        value = value * np.float32(src.scale) + np.float32(src.offset)
        # inf (and NaN) reflectances are no observation: they must never reach a monitor or CCDC's screening.
        bands[role] = value.where(np.isfinite(value))
    index = compute_index(cfg.index.name, bands)
    if clear is not None:
        index = index.where(clear)
        bands = {role: value.where(clear) for role, value in bands.items()}
    keep = ("time", "y", "x")
    index = index.drop_vars([c for c in index.coords if c not in keep])
    index.name = cfg.index.name
    extra = {role: bands[role].drop_vars([c for c in bands[role].coords if c not in keep]) for role in extra_roles}
    return index, extra


def _span(items: list[pystac.Item]) -> str:
    """The acquisitions a load covers, for messages: one item's key and id, or the first .. last keys."""
    if len(items) == 1:
        return f"acquisition {item_key(items[0])} (item {items[0].id})"
    keys = sorted(item_key(item) for item in items)
    return f"{len(items)} items {keys[0]} .. {keys[-1]}" if keys else "no items"
