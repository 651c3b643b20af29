"""Load items onto a tile's grid with odc-stac, mask clouds and compute the vegetation index."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from odc.stac import load as odc_load

from scheduler import auth
from scheduler.aligned import all_local, load_on_grid
from scheduler.clock import utc
from scheduler.config import INDEX_BANDS, Config, SourceConfig
from scheduler.errors import SourceError
from scheduler.grid import Tile
from scheduler.keys import acquisition_key as acquisition_key  # re-exported: callers of the loader use it
from scheduler.keys import key_text, utc_key
from scheduler.masks import clear_lookup
from scheduler.odc_boundary import failed_assets
from scheduler.retry import after_retries, call_with_retries, cause_of
from scheduler.sources import processing_baseline

if TYPE_CHECKING:
    from scheduler.sources import UnreadableItem

log = logging.getLogger(__name__)


def compute_index(name: str, bands: dict[str, xr.DataArray]) -> xr.DataArray:
    """An index from reflectance DataArrays (NaN where undefined), in xarray.

    The readable form of the index formulas: loads compute them with the fused kernels below, which
    tests/test_loading_speed.py checks against this bit for bit.
    """
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


# The kernel's code of each index; its operands are nir, the band nir is contrasted with, and blue (EVI only).
INDEX_CODES = {"ndvi": 0, "nbr": 1, "ndmi": 2, "evi": 3}
_CONTRASTED = {"ndvi": "red", "nbr": "swir22", "ndmi": "swir16", "evi": "red"}
_NAN = np.float32(np.nan)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _reflectance(raw, nodata, has_nodata, scale, offset):  # noqa: ANN001, ANN202 (numba-typed)
    """astype(float32) * scale + offset in float32, and whether it is usable: not nodata and finite."""
    value = np.float32(raw) * scale + offset
    return value, np.isfinite(value) & ~(has_nodata & (raw == nodata))


# The kernels below have no branch per pixel, so that LLVM vectorises them (clouds and nodata make branches
# unpredictable): each pixel's value is computed, NaN where not usable, then multiplied by its mask class's factor
# (1 where clear, NaN where not): a second pass, as the table lookup would stop the first from vectorising.
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _index_chunk(
    start, stop, out, code, nir, other, blue, mask, clear, has_nodata, nd_nir, nd_other, nd_blue, scale, offset
):  # noqa: ANN001, ANN202, E501
    """out[start:stop]: compute_index's float32 arithmetic on the reflectances, NaN where not clear or not finite.

    A pixel is clear where clear[mask[i]] is 1 (a table of 1 or NaN indexed by the mask band's class); an empty
    clear: all are.
    """
    if code == 3:  # EVI, operand by operand in numpy's order: 2.5 * (n - o) / (((n + 6 o) - 7.5 b) + 1)
        for i in range(start, stop):
            n, n_ok = _reflectance(nir[i], nd_nir, has_nodata, scale, offset)
            o, o_ok = _reflectance(other[i], nd_other, has_nodata, scale, offset)
            b, b_ok = _reflectance(blue[i], nd_blue, has_nodata, scale, offset)
            denominator = n + np.float32(6.0) * o - np.float32(7.5) * b + np.float32(1.0)
            value = np.float32(2.5) * (n - o) / denominator
            out[i] = value if n_ok & o_ok & b_ok & np.isfinite(value) else _NAN
    else:
        _ratio_chunk(start, stop, out, nir, other, has_nodata, nd_nir, nd_other, scale, offset)
    _mask_chunk(start, stop, out, mask, clear)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _ratio_chunk(start, stop, out, nir, other, has_nodata, nd_nir, nd_other, scale, offset):  # noqa: ANN001, ANN202
    """out[start:stop]: the normalised difference (n - o) / (n + o) of two reflectances, NaN where not usable."""
    for i in range(start, stop):
        n, n_ok = _reflectance(nir[i], nd_nir, has_nodata, scale, offset)
        o, o_ok = _reflectance(other[i], nd_other, has_nodata, scale, offset)
        value = (n - o) / (n + o)
        out[i] = value if n_ok & o_ok & np.isfinite(value) else _NAN


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _mask_chunk(start, stop, out, mask, clear):  # noqa: ANN001, ANN202
    """out[i] *= clear[mask[i]]: x 1 keeps the value bit for bit, x NaN gives the NaN of the table."""
    if clear.size > 0:
        for i in range(start, stop):
            out[i] *= clear[mask[i]]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _band_chunk(start, stop, out, raw, mask, clear, has_nodata, nodata, scale, offset):  # noqa: ANN001, ANN202
    """out[start:stop]: one band's reflectance, NaN where not clear, nodata or not finite."""
    for i in range(start, stop):
        value, ok = _reflectance(raw[i], nodata, has_nodata, scale, offset)
        out[i] = value if ok else _NAN
    _mask_chunk(start, stop, out, mask, clear)


@dataclass(frozen=True)
class _Reflectance:
    """How raw values become reflectances: the source's nodata, scale and offset."""

    nodata: float | None
    scale: float
    offset: float

    def args(self, raws: tuple[np.ndarray, ...]) -> tuple:
        """The kernels' has_nodata, each band's nodata as numpy compares it with that band, scale, offset."""
        return (self.nodata is not None, *(self._nodata_for(raw) for raw in raws), *self._linear())

    def _nodata_for(self, raw: np.ndarray) -> np.floating:
        # numpy compares an integer array with a Python float in float64, a float array in the array's own type.
        value = 0.0 if self.nodata is None else self.nodata
        return raw.dtype.type(value) if np.issubdtype(raw.dtype, np.floating) else np.float64(value)

    def _linear(self) -> tuple[np.float32, np.float32]:
        return np.float32(self.scale), np.float32(self.offset)


def _index_operands(name: str, raws: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The index's raw bands in the kernel's order (blue only for EVI; another band stands in, unread, otherwise)."""
    other = raws[_CONTRASTED[name]]
    return raws["nir"], other, raws["blue"] if name == "evi" else other


def _fused(kernel: Callable[..., None], out: np.ndarray, args: tuple, threads: int) -> None:
    """Run a chunk kernel over `out`, split among `threads` threads (the kernels release the GIL)."""
    size = out.size
    parts = max(1, min(threads, size // _MIN_PART))
    if parts == 1:
        kernel(0, size, out, *args)
        return
    bounds = [size * i // parts for i in range(parts + 1)]
    with ThreadPoolExecutor(parts, thread_name_prefix="nrt-fused") as pool:
        list(pool.map(lambda i: kernel(bounds[i], bounds[i + 1], out, *args), range(parts)))


# Below this many values per thread, starting a thread costs more than it saves.
_MIN_PART = 1 << 18


def item_key(item: pystac.Item) -> str:
    """acquisition_key of an item's own datetime (a solar day's key is that of its earliest item)."""
    return utc_key(item.datetime or dt.datetime.min)


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
    return [Acquisition(key_text(_nominal(group[0])), group) for _, group in sorted(groups.items())]


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


def before_unreadable(
    pending: PendingItems, unreadable: list[UnreadableItem], tile: Tile, last: str
) -> SourceError | None:
    """Hold `pending` back at the earliest dated unreadable item after `last`; the error saying so, if any.

    Such an item may be one of this tile's acquisitions: absorbing later ones first would make it late, never to be
    absorbed once fixed. So the tile stops before its day, as before an unreadable asset, and the next run reads it
    again. An item whose text no longer tells its date cannot be placed: it is skipped (the source warned).
    """
    dated = sorted((bad for bad in unreadable if bad.when and bad.when[:10] > last[:10]), key=lambda b: b.when or "")
    if not dated:
        return None
    bad = dated[0]
    # By UTC day, not solar day: close enough to keep a half-read day out, and the item's footprint is unknown.
    pending.todo = [acq for acq in pending.todo if acq.key[:10] < bad.when[:10]]
    return SourceError(
        f"tile {tile.id}: acquisition {bad.when} ({bad.where}) cannot be read: {bad.reason}",
        acquisition=bad.when,
        cause=bad.reason,
    )


class AcquisitionError(SourceError):
    """One acquisition could not be read after the retries; the acquisitions before it were."""

    def __init__(self, message: str, *, tile: str, acquisition: str, items: str, cause: str) -> None:
        super().__init__(message, acquisition=acquisition, cause=cause)
        self.tile, self.items = tile, items
        self.loaded: xr.DataArray | None = None


class AssetReadError(OSError):
    """An asset could not be read (HTTP error, truncated or invalid file); an OSError, so it is retried."""


# Names each load's read pool, so its threads' log records are told apart from another load's.
_POOLS = itertools.count()


def gdal_options(src: SourceConfig, *, fresh: bool = False) -> dict[str, object]:
    """GDAL settings for reading assets: bounded HTTP waits; `fresh` forgets what /vsicurl/ cached."""
    seconds = max(1, math.ceil(src.timeout_seconds))
    options: dict[str, object] = {
        "GDAL_HTTP_TIMEOUT": seconds,
        "GDAL_HTTP_CONNECTTIMEOUT": seconds,
        # Our own retry policy decides (429 and 5xx included, logged, then reported); GDAL's retries would multiply
        # with it.
        "GDAL_HTTP_MAX_RETRY": 0,
        # Without it GDAL lists the asset's "folder" first: slow at best, on some servers it hangs until timeout.
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        # A window covering several blocks: adjacent blocks in one range request; over HTTP/2, requests to one
        # host share a connection.
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        # The CRS from the GeoTIFF keys, not looked up in PROJ's EPSG database: half the cost of every open
        # (0.63 -> 0.35 ms; a run opens each asset once per pair of tiles). The same CRS for files whose keys
        # agree with their EPSG code; one whose keys contradict it gets a custom CRS and is read reprojected.
        "GTIFF_SRS_SOURCE": "GEOKEYS",
    }
    options.update(auth.gdal_options(src))
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
    parts = batches(group_acquisitions(items, tile), DATES_PER_READ)
    if len(parts) > 1:
        with contextlib.suppress(_Regrouped):
            return _load_in_parts(parts, tile, cfg, extra_roles)
    return masked_index(_read(items, tile, cfg, extra_roles), cfg, extra_roles, _linear_by_date(items, tile, cfg))


# A long history is read this many dates at a time into the output: its raw bands never all live at once.
DATES_PER_READ = 24


class _Regrouped(Exception):
    """odc-stac grouped a part's items into other dates than group_acquisitions (not expected): read all at once."""


def _load_in_parts(
    parts: list[list[pystac.Item]], tile: Tile, cfg: Config, extra_roles: tuple[str, ...]
) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """Read the dates part by part, each part's index and reflectances written into the whole load's arrays."""
    sizes = [len(group_acquisitions(part, tile)) for part in parts]
    shape = (sum(sizes), tile.height, tile.width)
    index = _output(shape)
    extra = {role: _output(shape) for role in extra_roles}
    times, first = [], 0
    for part, size in zip(parts, sizes, strict=True):
        ds = _read(part, tile, cfg, extra_roles)
        if ds.sizes["time"] != size:
            raise _Regrouped
        rows = slice(first, first + size)
        flat = {role: out[rows].reshape(-1) for role, out in extra.items()}
        _fill(ds, cfg, index[rows].reshape(-1), flat, _linear_by_date(part, tile, cfg))
        times.append(ds.indexes["time"])
        first += size
    time = times[0].append(times[1:])
    src = cfg.source
    arrays = {role: _as_array(out, ds[src.bands[role]], time) for role, out in extra.items()}
    return _as_array(index, ds[src.bands["nir"]], time, cfg.index.name), arrays


def _read(items: list[pystac.Item], tile: Tile, cfg: Config, extra_roles: tuple[str, ...]) -> xr.Dataset:
    """odc-stac's load of the index's, the extra roles' and the mask's assets, time sorted, with our retries."""
    src = cfg.source
    roles = tuple(dict.fromkeys(INDEX_BANDS[cfg.index.name] + extra_roles))
    assets = [src.bands[role] for role in roles]
    if src.mask_band:
        assets.append(src.mask_band)
    attempts = 0
    unsigned = items

    def read() -> xr.Dataset:
        nonlocal attempts, items
        attempts += 1
        name = f"nrt-load-{next(_POOLS)}"
        options = gdal_options(src, fresh=attempts > 1)
        items = auth.prepared(unsigned, src, assets)  # signed now: a token renewed since the search is used
        auth.verify(items, src, assets[-1], options)
        with (
            warnings.catch_warnings(),
            rasterio.Env(**options),
            failed_assets(name) as failed,
        ):
            warnings.simplefilter("ignore")
            try:
                return _on_grid(options) or _odc_load(name)
            except Exception as exc:
                if failed.assets:  # odc said which asset; GDAL's message alone does not
                    raise AssetReadError(f"asset {failed.assets[-1]}: {cause_of(exc)}") from exc
                raise

    remote = not all_local(items, assets)
    # Local reads use the CPUs; remote ones mostly wait on the network: as many at once as the source allows.
    threads = max(cfg.compute.tile_threads(), src.read_concurrency) if remote else cfg.compute.tile_threads()

    def _odc_load(name: str, *, lazy: bool = False) -> xr.Dataset:
        # The reads overlap in threads: GDAL's open, read and decode release the GIL. odc shuts the pool down.
        return odc_load(
            items[:1] if lazy else items,
            bands=assets,
            geobox=tile.geobox,
            groupby="solar_day",
            resampling="nearest",
            chunks={} if lazy else None,
            pool=ThreadPoolExecutor(threads, thread_name_prefix=name) if threads > 1 and not lazy else None,
            fail_on_error=True,
        )

    def _on_grid(options: dict[str, object]) -> xr.Dataset | None:
        # Assets on the tile's grid are read window by window, laid out as odc-stac's lazy load of one item.
        if not items or any(item.datetime is None for item in items):
            return None  # odc-stac's time of an item without datetime: left to it
        skeleton = _SKELETONS.kept(_skeleton_key(items[0], assets, tile), lambda: _odc_load("", lazy=True))
        acquisitions = group_acquisitions(items, tile)
        # A retry opens every asset afresh, not through datasets other tiles keep open.
        share = attempts == 1
        aws = auth.s3_session(src)  # S3 keys reach GDAL only in a session, never as plain options
        return load_on_grid(
            skeleton, acquisitions, tile, threads=threads, gdal=options, share=share, remote=remote, aws=aws
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
    if not ds.indexes["time"].is_monotonic_increasing:  # odc-stac sorts its groups; sortby would copy anyway
        ds = ds.sortby("time")
    return ds


class _Skeletons:
    """odc-stac's lazy loads of one item (variables, dtypes, attributes, the tile's coordinates), the latest kept.

    Building one takes odc-stac ~17 ms, mostly holding the GIL; a tile's parts and updates ask for the same one.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple, xr.Dataset] = OrderedDict()

    def kept(self, key: tuple, make: Callable[[], xr.Dataset]) -> xr.Dataset:
        """The skeleton kept for `key`, or `make()`'s, then kept (the oldest dropped beyond capacity)."""
        with self._lock:
            skeleton = self._kept.get(key)
            if skeleton is not None:
                self._kept.move_to_end(key)
                return skeleton
        skeleton = make()  # outside the lock: other tiles' loads go on meanwhile
        with self._lock:
            self._kept[key] = skeleton
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return skeleton


_SKELETONS = _Skeletons()


def _skeleton_key(item: pystac.Item, assets: list[str], tile: Tile) -> tuple:
    """What odc-stac's lazy load of `item` depends on: the tile's grid, the assets and their metadata but the href.

    Items whose assets say the same (data type, nodata, scale, projection) give the same variables.
    """
    described = {
        name: {k: v for k, v in item.assets[name].to_dict().items() if k != "href"} if name in item.assets else None
        for name in assets
    }
    projection = {k: v for k, v in item.properties.items() if k.startswith(("proj:", "raster:"))}
    metadata = json.dumps([described, projection, item.collection_id], sort_keys=True, default=str)
    grid = (str(tile.crs), tuple(tile.transform)[:6], tile.width, tile.height)
    return grid, tuple(assets), metadata


def masked_index(
    ds: xr.Dataset,
    cfg: Config,
    extra_roles: tuple[str, ...] = (),
    linear: list[tuple[float, float]] | None = None,
) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """The index and the `extra_roles` reflectances of a loaded dataset: scaled, cloud-masked, NaN where undefined.

    One fused pass per output (numba, in threads): the same float32 operations, in the same order, as xarray's
    astype, where, scale and offset, isfinite, isin and index arithmetic, without their full-size temporaries.
    """
    src = cfg.source
    template = ds[src.bands["nir"]]  # every index's first operand: xarray's arithmetic kept its attributes
    index = _output(template.size)
    extra = {role: _output(template.size) for role in extra_roles}
    _fill(ds, cfg, index, extra, linear)
    time = ds.indexes["time"]
    arrays = {role: _as_array(out, ds[src.bands[role]], time) for role, out in extra.items()}
    return _as_array(index, template, time, cfg.index.name), arrays


_PAGE = 4096


def _output(shape: int | tuple[int, ...]) -> np.ndarray:
    """An empty float32 array for the kernels' output, starting half a page off the bands' arrays.

    Large numpy arrays all start at the same offset in a 4 KiB page. A kernel storing to one while loading from
    another at the same offset stalls on the CPU's 4K aliasing (its loads wait for unrelated stores): 2.5x slower.
    """
    size = int(np.prod(shape))
    raw = np.empty(size * 4 + _PAGE, dtype=np.uint8)
    skip = (_PAGE // 2 - raw.ctypes.data % _PAGE) % _PAGE
    return raw[skip : skip + size * 4].view(np.float32).reshape(shape)


def _fill(
    ds: xr.Dataset,
    cfg: Config,
    index: np.ndarray,
    extra: dict[str, np.ndarray],
    linear: list[tuple[float, float]] | None = None,
) -> None:
    """Write a loaded dataset's index and extra reflectances into flat float32 arrays of its size.

    `linear`: each time step's (scale, offset) from its items' metadata; without it, the config's for all.
    """
    src = cfg.source
    raws = {role: _flat(ds[src.bands[role]]) for role in dict.fromkeys(INDEX_BANDS[cfg.index.name] + tuple(extra))}
    mask, clear = (
        clear_lookup(_flat(ds[src.mask_band]), src.mask_valid, src.mask_invalid) if src.mask_band else _ALL_CLEAR
    )
    steps = [_Reflectance(src.nodata, *pair) for pair in linear or []]
    if len(set(steps)) <= 1 or len(steps) != ds.sizes["time"]:
        # One pass over every date (the usual case: one scale and offset for the whole load).
        params = (
            steps[0] if steps and len(steps) == ds.sizes["time"] else _Reflectance(src.nodata, src.scale, src.offset)
        )
        _fill_pass(cfg, index, extra, raws, (mask, clear), params)
        return
    size = index.size // len(steps)
    for t, params in enumerate(steps):  # dates of several processing baselines: each with its own offset
        rows = slice(t * size, (t + 1) * size)
        part = {role: out[rows] for role, out in extra.items()}
        masks = (mask[rows], clear) if clear.size else (mask, clear)
        _fill_pass(cfg, index[rows], part, {role: raw[rows] for role, raw in raws.items()}, masks, params)


def _fill_pass(
    cfg: Config,
    index: np.ndarray,
    extra: dict[str, np.ndarray],
    raws: dict[str, np.ndarray],
    masks: tuple[np.ndarray, np.ndarray],
    params: _Reflectance,
) -> None:
    """The fused kernels over flat arrays of the same dates: the index, then each extra reflectance."""
    mask, clear = masks
    threads = cfg.compute.tile_threads()
    operands = _index_operands(cfg.index.name, raws)
    code = INDEX_CODES[cfg.index.name]
    _fused(_index_chunk, index, (code, *operands, mask, clear, *params.args(operands)), threads)
    for role, out in extra.items():
        _fused(_band_chunk, out, (raws[role], mask, clear, *params.args((raws[role],))), threads)


def item_linear(item: pystac.Item, key: str, src: SourceConfig) -> tuple[float, float]:
    """An asset's scale and offset from the item's metadata, else the config's.

    raster:bands' scale/offset, or STAC 1.1's raster:scale/raster:offset on the asset. A scale given without an
    offset means offset 0 (Sentinel-2 before processing baseline 04.00 on some providers). Without either, a
    Sentinel-2 item's processing baseline (s2:processing_baseline, else the _Nxxyy_ of its product name) decides the
    offset (0 before 04.00, -0.1 from it on).
    """
    asset = item.assets.get(key)
    fields = asset.extra_fields if asset is not None else {}
    bands = fields.get("raster:bands") or [{}]
    band = bands[0] if isinstance(bands[0], dict) else {}
    scale = fields.get("raster:scale", band.get("scale"))
    offset = fields.get("raster:offset", band.get("offset"))
    if scale is None and offset is None:
        baseline = processing_baseline(item)
        if baseline is not None:  # "NN.NN": compared as text
            # ESA's L2A DNs carry a BOA offset of 1000 from baseline 04.00 (January 2022) on, none before.
            return src.scale, -0.1 if baseline >= "04.00" else 0.0
        return src.scale, src.offset
    return (
        float(scale) if scale is not None else src.scale,
        float(offset) if offset is not None else 0.0,
    )


def _linear_by_date(items: list[pystac.Item], tile: Tile, cfg: Config) -> list[tuple[float, float]]:
    """Each acquisition's (scale, offset), in load order, from its first item's index band (nir)."""
    key = cfg.source.bands["nir"]
    return [item_linear(acq.items[0], key, cfg.source) for acq in group_acquisitions(items, tile)]


# No mask band: an empty lookup table tells the kernels every pixel is clear.
_ALL_CLEAR = (np.zeros(1, dtype=np.uint8), np.zeros(0, dtype=np.float32))


def _flat(data: xr.DataArray) -> np.ndarray:
    """A loaded band as a 1-D C-contiguous view (odc-stac allocates C-contiguous arrays: no copy)."""
    return np.ascontiguousarray(data.values).reshape(-1)


def _as_array(values: np.ndarray, like: xr.DataArray, time: pd.Index, name: str | None = None) -> xr.DataArray:
    """Fused values on `like`'s grid, with its attributes and name as xarray's arithmetic keeps them, no odc extras."""
    coords = {"time": time, "y": like.coords["y"], "x": like.coords["x"]}
    shape = (len(time), like.sizes["y"], like.sizes["x"])
    return xr.DataArray(
        values.reshape(shape), coords=coords, dims=like.dims, name=name or like.name, attrs=dict(like.attrs)
    )


def _span(items: list[pystac.Item]) -> str:
    """The acquisitions a load covers, for messages: one item's key and id, or the first .. last keys."""
    if len(items) == 1:
        return f"acquisition {item_key(items[0])} (item {items[0].id})"
    keys = sorted(item_key(item) for item in items)
    return f"{len(items)} items {keys[0]} .. {keys[-1]}" if keys else "no items"


@contextlib.contextmanager
def warming_up(cfg: Config) -> Iterator[None]:
    """warm_up on a thread beside the block (a run's start: the tiles' first searches and reads), done by its end.

    numba's first load of compiled code in a process also starts its compiler, ~0.3 s: on the run's first index
    pass, both tiles side by side would wait for it.
    """
    thread = threading.Thread(target=_warm_up_quietly, args=(cfg,), name="nrt-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _warm_up_quietly(cfg: Config) -> None:
    """warm_up; a failure only costs the first index pass the load."""
    try:
        warm_up(cfg)
    except Exception:
        log.debug("kernel warm-up failed", exc_info=True)


def warm_up(cfg: Config) -> None:
    """Load the fused kernels' compiled code for the usual dtypes (uint16 bands, a uint8 mask) on 2 x 2 pixels.

    numba loads a kernel's cached machine code on its first call: ~0.3 s that a server's first new acquisition
    would otherwise wait for (its start-up run reads nothing when nothing is new).
    """
    src = cfg.source
    dims = ("time", "y", "x")
    data = {src.bands[role]: (dims, np.ones((1, 2, 2), np.uint16)) for role in INDEX_BANDS[cfg.index.name]}
    if src.mask_band:
        data[src.mask_band] = (dims, np.zeros((1, 2, 2), np.uint8))
    coords = {"time": [np.datetime64("2024-01-01")], "y": [1.0, 0.0], "x": [0.0, 1.0]}
    masked_index(xr.Dataset(data, coords=coords), cfg)
