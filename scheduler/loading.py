"""Load items onto a tile's grid with odc-stac, mask clouds and compute the vegetation index."""

from __future__ import annotations

import datetime as dt
import logging
import warnings

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from odc.stac import load as odc_load

from scheduler.clock import utc
from scheduler.config import INDEX_BANDS, Config
from scheduler.errors import SourceError
from scheduler.grid import Tile

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


def load_index(items: list[pystac.Item], tile: Tile, cfg: Config) -> xr.DataArray:
    """Return the masked index as a (time, y, x) float32 DataArray on the tile grid, time sorted."""
    return load_index_and_bands(items, tile, cfg)[0]


def load_index_and_bands(
    items: list[pystac.Item], tile: Tile, cfg: Config, extra_roles: tuple[str, ...] = ()
) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """The masked index plus the masked reflectances of `extra_roles` (e.g. for CCDC's screening)."""
    src = cfg.source
    roles = tuple(dict.fromkeys(INDEX_BANDS[cfg.index.name] + extra_roles))
    assets = [src.bands[role] for role in roles]
    if src.mask_band:
        assets.append(src.mask_band)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = odc_load(
                items,
                bands=assets,
                geobox=tile.geobox,
                groupby="solar_day",
                resampling="nearest",
                chunks=None,
                fail_on_error=True,
            )
    except Exception as exc:  # rasterio, odc and HTTP errors: the message names the asset
        raise SourceError(f"tile {tile.id}: loading {len(items)} item(s) failed: {exc}") from exc
    ds = ds.sortby("time")
    clear = ds[src.mask_band].isin(src.mask_valid) if src.mask_band else None
    bands = {}
    for role in roles:
        raw = ds[src.bands[role]]
        value = raw.astype(np.float32)
        if src.nodata is not None:
            value = value.where(raw != src.nodata)
        bands[role] = value * np.float32(src.scale) + np.float32(src.offset)
    index = compute_index(cfg.index.name, bands)
    if clear is not None:
        index = index.where(clear)
        bands = {role: value.where(clear) for role, value in bands.items()}
    keep = ("time", "y", "x")
    index = index.drop_vars([c for c in index.coords if c not in keep])
    index.name = cfg.index.name
    extra = {role: bands[role].drop_vars([c for c in bands[role].coords if c not in keep]) for role in extra_roles}
    return index, extra


def _nominal(item: pystac.Item) -> dt.datetime:
    """An item's time as odc-stac takes it: datetime, else start_datetime."""
    return utc(item.datetime or item.common_metadata.start_datetime)


def _solar_day(item: pystac.Item, lon: float) -> dt.date:
    """The solar day odc-stac groups an item into (its offset is snapped to whole hours, as odc-stac does)."""
    return (_nominal(item) + dt.timedelta(seconds=int(lon / 15) * 3600)).date()


def acquisitions(items: list[pystac.Item], tile: Tile) -> list[tuple[str, list[pystac.Item]]]:
    """The items grouped by acquisition (solar day, as the loader groups them), each with its expected key."""
    ((lon, _),) = tile.geobox.extent.centroid.to_crs("epsg:4326").points
    groups: dict[dt.date, list[pystac.Item]] = {}
    for item in sorted(items, key=lambda i: (_nominal(i), i.id)):
        groups.setdefault(_solar_day(item, lon), []).append(item)
    # The loaded time of a group is its earliest item's (odc-stac sorts each group by time, then id).
    return [(_nominal(group[0]).strftime("%Y-%m-%dT%H:%M:%S"), group) for _, group in sorted(groups.items())]


def batches(groups: list[tuple[str, list[pystac.Item]]], size: int) -> list[list[pystac.Item]]:
    """Consecutive acquisitions, `size` at a time, so a load holds at most `size` dates (never half a day)."""
    return [[item for _, group in groups[i : i + size] for item in group] for i in range(0, len(groups), size)]
