"""Windowed reads of assets already on a tile's grid: odc-stac's pixels without its per-read machinery.

odc-stac pastes such an asset into the tile unchanged (same CRS and pixel size, whole-pixel offset, nearest
resampling) and fuses the granules of one solar day by filling the earlier one's nodata with the later one's
pixels. Done here with one rasterio window read per asset, that is the same array, for about a fifth less CPU
per read (bench/README.md). odc-stac still decides the rest: which variables, dtypes, nodata and coordinates a
load has, from its lazy load of one of the items (no pixels read). Anything else (another grid, a nodata value to
remap, a float band, an unreadable asset) makes `load_on_grid` answer None, and the caller reads the whole load
through odc-stac, with its resampling and its error reports. Remote assets (HTTP, S3) are read the same way, each
asset in its own task of an I/O pool (`source.read_concurrency` at once): there a read mostly waits on the network,
and an asset that cannot be read is an error (retried by the caller), not a reason to read everything again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import rasterio
import xarray as xr
from rasterio.session import AWSSession
from rasterio.windows import Window

from catalog.atomic import file_version

if TYPE_CHECKING:
    import pystac

    from scheduler.grid import Tile
    from scheduler.loading import Acquisition

log = logging.getLogger(__name__)


class OffGrid(Exception):
    """An asset this module cannot paste: odc-stac has to read the load."""


def load_on_grid(
    skeleton: xr.Dataset,
    acquisitions: list[Acquisition],
    tile: Tile,
    *,
    threads: int,
    gdal: dict[str, object],
    share: bool = True,
    remote: bool = False,
    aws: dict[str, str] | None = None,
) -> xr.Dataset | None:
    """The acquisitions' pixels, read window by window; None where odc-stac must read them.

    `skeleton` is odc-stac's lazy load of one of the items: its variables, their types, attributes and the tile's
    coordinates. The dates are the acquisitions' (group_acquisitions groups as odc-stac does), each at its first
    item's time, as odc-stac stamps a group. With `share`, assets already open for another tile of the run (see
    `shared_datasets`) are read through that dataset. `remote`: the assets are not local files; `threads` assets are
    read at once, none shared, and a failed read raises UnreadableAsset. `aws`: an S3 source's AWSSession arguments.
    """
    share = share and not remote
    arrays: dict[str, np.ndarray] = {}
    fills: dict[str, int] = {}
    for name, var in skeleton.data_vars.items():
        if var.dims != ("time", "y", "x") or var.dtype.kind not in "iu":
            return None
        fills[name] = int(var.attrs.get("nodata", 0))
        # Not filled here: each date's first asset writes all of its slice (see _paste), most often by reading
        # straight into it; filling the whole load first cost a pass over it.
        arrays[name] = np.empty((len(acquisitions), *var.shape[1:]), dtype=var.dtype)

    def read_variable(i: int, name: str, wait: bool) -> bool:
        """Paste the date's assets of one variable; False, with nothing read, if its first asset is Busy."""
        items = [acq for acq in acquisitions[i].items if name in acq.assets]
        if not items:
            arrays[name][i].fill(fills[name])  # as odc-stac leaves a date without the asset
        for first, item in enumerate(items):
            href = item.assets[name].get_absolute_href()
            try:
                with _opened(href, share, wait=wait or first > 0) as src:
                    _paste(src, arrays[name][i], fills[name], tile, fuse=first > 0)
            except Busy:
                return False
        return True

    def read_date(i: int) -> None:
        with rasterio.Env(AWSSession(**aws) if aws else None, **gdal):  # GDAL's options are per thread
            pending = list(arrays)
            while pending:
                # Another tile is reading this asset now: read another variable of the date meanwhile. Tiles
                # side by side read the same assets in the same order; they fall out of step this way, and
                # neither waits nor opens a second dataset of the asset.
                name = next((n for n in pending if read_variable(i, n, wait=False)), None)
                if name is None:
                    name = pending[0]
                    read_variable(i, name, wait=True)
                pending.remove(name)

    def read_asset(task: tuple[int, str]) -> None:
        i, name = task
        with rasterio.Env(AWSSession(**aws) if aws else None, **gdal):
            try:
                read_variable(i, name, wait=True)
            except (rasterio.errors.RasterioError, OSError) as exc:
                raise UnreadableAsset(f"asset {_hrefs(acquisitions[i], name)}: {exc}") from exc

    if remote:
        # Every asset of the load is a task: the first date's first (off the grid, the load stops there).
        tasks = [(i, name) for i in range(len(acquisitions)) for name in arrays]
        try:
            with ThreadPoolExecutor(max(1, threads), thread_name_prefix="nrt-remote") as pool:
                for part in (tasks[: len(arrays)], tasks[len(arrays) :]):
                    list(pool.map(read_asset, part))
        except (OffGrid, ValueError) as exc:
            log.debug("tile %s: odc-stac reads this load: %s", tile.id, exc)
            return None
        return _dataset(skeleton, acquisitions, arrays)
    try:
        read_date(0)  # one date first: an archive off the grid costs one date's reads, not a load's
        if threads > 1:
            with ThreadPoolExecutor(threads, thread_name_prefix="nrt-window") as pool:
                list(pool.map(read_date, range(1, len(acquisitions))))
        else:
            for i in range(1, len(acquisitions)):
                read_date(i)
    except (OffGrid, rasterio.errors.RasterioError, OSError, ValueError) as exc:
        log.debug("tile %s: odc-stac reads this load: %s", tile.id, exc)
        return None
    return _dataset(skeleton, acquisitions, arrays)


class UnreadableAsset(OSError):
    """A remote asset could not be read (HTTP error, truncated file): an OSError, so the caller retries the load."""


def _hrefs(acquisition: Acquisition, name: str) -> str:
    """The hrefs of one asset of an acquisition's items, for messages."""
    return ", ".join(item.assets[name].href for item in acquisition.items if name in item.assets)


def _dataset(skeleton: xr.Dataset, acquisitions: list[Acquisition], arrays: dict[str, np.ndarray]) -> xr.Dataset:
    """The pasted arrays laid out as odc-stac's load: the skeleton's variables, attributes and coordinates."""
    # odc-stac's mk_dataset: a DataArray of the groups' naive datetimes.
    time = xr.DataArray([acq.items[0].datetime.replace(tzinfo=None) for acq in acquisitions], dims=("time",))
    coords = {**{name: coord for name, coord in skeleton.coords.items() if name != "time"}, "time": time}
    variables = {}
    for name, var in skeleton.data_vars.items():
        variables[name] = xr.DataArray(arrays[name], dims=var.dims, coords=coords, attrs=dict(var.attrs))
        variables[name].encoding = dict(var.encoding)
    return xr.Dataset(variables, coords=coords, attrs=dict(skeleton.attrs))


def _paste(src: rasterio.io.DatasetReader, out: np.ndarray, fill: int, tile: Tile, *, fuse: bool) -> None:
    """Read the asset's window of the tile into `out` (2-D); with `fuse`, only where `out` still holds `fill`.

    Without `fuse` (a date's first asset) `out` holds anything before: all of it is written, `fill` where the asset
    does not reach.
    """
    row, col = _offset(src, tile, out.dtype, fill)
    # The part of the tile the asset covers, in the asset's pixels and in the tile's.
    top, left = max(0, row), max(0, col)
    bottom, right = min(src.height, row + tile.height), min(src.width, col + tile.width)
    if bottom <= top or right <= left:
        if not fuse:
            out.fill(fill)
        return
    window = Window(left, top, right - left, bottom - top)
    target = out[top - row : bottom - row, left - col : right - col]
    if not fuse:
        if target.shape == out.shape:
            src.read(1, window=window, out=out)
            return
        out.fill(fill)
    pixels = src.read(1, window=window)
    np.copyto(target, pixels, where=target == fill)


class Busy(Exception):
    """Every open dataset of the asset is being read by another thread (SharedDatasets.reading without wait)."""


class _Shared:
    """An asset's open datasets not in use; a dataset is read by one thread at a time (GDAL's are not thread-safe)."""

    def __init__(self) -> None:
        self.idle: list[rasterio.io.DatasetReader] = []
        self.in_use = 0
        self.evicted = False


class SharedDatasets:
    """Assets opened once for all the tiles of a run that read them side by side, the latest `capacity` kept open.

    Tiles side by side read the same assets in the same order, so the second tile finds most of them open, and a run
    keeps them for its later tiles (run_capacity). An open costs ~0.35 ms, most of it holding the GIL (rasterio
    reads the CRS, transform and tags).
    A thread never waits for another one's read: if every dataset of the asset is in use, it opens one more, or
    without `wait` is told the asset is Busy and reads something else first. A file replaced while open is a new
    key (inode, size, modification time), never the old handle.
    """

    def __init__(self, capacity: int = 48, per_asset: int = 1) -> None:
        self.capacity = capacity
        self.per_asset = per_asset
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple, _Shared] = OrderedDict()

    @contextlib.contextmanager
    def reading(self, href: str, *, wait: bool = True) -> Iterator[rasterio.io.DatasetReader]:
        """A dataset of the asset, this thread's alone until the block ends; Busy if all are in use and not `wait`."""
        key = (href, *file_version(href.removeprefix("file://")))
        retired: list[rasterio.io.DatasetReader] = []
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                entry = self._open[key] = _Shared()
                while len(self._open) > self.capacity:
                    retired += _retire(self._open.popitem(last=False)[1])
            else:
                self._open.move_to_end(key)
            dataset = entry.idle.pop() if entry.idle else None
            busy = dataset is None and entry.in_use and not wait
            if not busy:
                entry.in_use += 1
        for old in retired:  # outside the lock: closing takes a while, and other threads would wait for it
            old.close()
        if busy:
            raise Busy(href)
        try:
            if dataset is None:
                dataset = rasterio.open(href)  # outside the lock: other threads go on
        except BaseException:
            with self._lock:
                entry.in_use -= 1
            raise
        try:
            yield dataset
        finally:
            with self._lock:
                entry.in_use -= 1
                keep = not entry.evicted and len(entry.idle) < self.per_asset
                if keep:
                    entry.idle.append(dataset)
            if not keep:
                dataset.close()

    def close(self) -> None:
        """Close every dataset not in use (those in use are closed by their reader)."""
        retired: list[rasterio.io.DatasetReader] = []
        with self._lock:
            while self._open:
                retired += _retire(self._open.popitem(last=False)[1])
        for dataset in retired:
            dataset.close()


def _retire(entry: _Shared) -> list[rasterio.io.DatasetReader]:
    """An asset leaving the shared ones; returns its idle datasets, for the caller to close outside the lock.

    Those in use are closed by their reader.
    """
    entry.evicted = True
    idle, entry.idle = entry.idle, []
    return idle


# Assets a run keeps open at most (see run_capacity).
RUN_CAPACITY = 1024
# The run's shared datasets while tiles run side by side in this process (tile threads do not inherit contexts).
_shared: SharedDatasets | None = None
_sharing = 0
_sharing_lock = threading.Lock()


def run_capacity() -> int:
    """How many assets a run keeps open: all of a year's dates for every tile, within a quarter of the file limit.

    Tiles run side by side in pairs, and every pair reads the same assets: kept open, an asset is opened once per
    run instead of once per pair (2000 x 1000 px, four pairs: `fit --forward` 17.1 -> 14.9 s). An open dataset
    holds ~0.2 MB besides its blocks in GDAL's cache, which nrt-alerts bounds (GDAL_CACHEMAX, server/entry.py).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft // 4 if soft != resource.RLIM_INFINITY else RUN_CAPACITY
    return max(48, min(RUN_CAPACITY, limit))


@contextlib.contextmanager
def shared_datasets() -> Iterator[None]:
    """Within the block, tile threads share their open assets (see SharedDatasets); closed when the last block ends."""
    global _shared, _sharing
    with _sharing_lock:
        _sharing += 1
        if _shared is None:
            _shared = SharedDatasets(run_capacity())
    try:
        yield
    finally:
        with _sharing_lock:
            _sharing -= 1
            if not _sharing and _shared is not None:
                _shared.close()
                _shared = None


@contextlib.contextmanager
def _opened(href: str, share: bool, *, wait: bool = True) -> Iterator[rasterio.io.DatasetReader]:
    """The asset's dataset: one of the run's shared ones when sharing (see SharedDatasets.reading), else its own."""
    shared = _shared if share else None
    if shared is None:
        with rasterio.open(href) as src:
            yield src
    else:
        with shared.reading(href, wait=wait) as src:
            yield src


def _offset(src: rasterio.io.DatasetReader, tile: Tile, dtype: np.dtype, fill: int) -> tuple[int, int]:
    """The tile's top-left pixel in the asset's pixels; OffGrid unless odc-stac would paste the asset as is."""
    a, b, c, d, e, f = tile.transform[:6]
    sa, sb, sc, sd, se, sf = src.transform[:6]
    if src.count != 1 or np.dtype(src.dtypes[0]) != dtype or src.nodata is None or src.nodata != fill:
        raise OffGrid(f"{src.name}: {src.count} band(s) of {src.dtypes[0]}, nodata {src.nodata}")
    if (sa, sb, sd, se) != (a, b, d, e) or src.crs != tile.crs:
        raise OffGrid(f"{src.name}: another grid ({src.crs}, {src.res})")
    col, row = (c - sc) / a, (f - sf) / e
    if not (_whole(col) and _whole(row)):
        raise OffGrid(f"{src.name}: offset by a fraction of a pixel ({col}, {row})")
    return round(row), round(col)


def all_local(items: list[pystac.Item], names: list[str]) -> bool:
    """Whether every one of these assets is a file on this machine's file system (or a share mounted here)."""
    hrefs = (item.assets[name].get_absolute_href() or "" for item in items for name in names if name in item.assets)
    return all("://" not in href or href.startswith("file://") for href in hrefs)


def _whole(value: float) -> bool:
    return math.isclose(value, round(value), abs_tol=1e-6)
