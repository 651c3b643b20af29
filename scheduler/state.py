"""A tile's monitor state on disk: one NetCDF file, so state and record of absorbed acquisitions commit together.

The file holds nrt's arrays, our run bookkeeping, the georeference and the list of absorbed acquisitions, and a
SHA-256 of all of it (arrays as stored, coordinates and the metadata), checked on every load. Integer arrays and
our run bookkeeping are compressed (zlib + shuffle), float arrays are not (see COMPRESSED_KINDS); fit-time float64
arrays are stored as float32 (see COMPACT_DTYPE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from catalog.atomic import atomic_path, file_version
from scheduler import backups, nrt_boundary
from scheduler.errors import NotFittedError, StateError
from scheduler.monitors import EXTRA_LAYERS, MONITOR_CLASSES, SERIES_ATTR, MonitorState

# netCDF-C/HDF5 is not thread-safe: tiles running side by side in one process save and load states one at a time.
NETCDF_LOCK = threading.Lock()

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: checksum and float32 storage; version 1 files (no checksum) are still read
READABLE_FORMATS = (1, 2)
META_ATTR = "nrt_alerts"
CHECKSUM_ATTR = "nrt_alerts_sha256"
DTYPE_ATTR = "nrt_alerts_dtype"  # the in-memory dtype of an array stored narrower
EXTRA_PREFIX = "extra_"
# float64 arrays of nrt's state (IQR's q25/q75, EWMA's boundary, MoSum's residual window, CCDC-NRT's beta) are
# stored as float32 and read back as float64: they derive from reflectances quantised at 1e-4, and float32's
# relative rounding (6e-8) is far below that. The only float64 arrays kept are the x/y coordinates (georeference).
COMPACT_DTYPE = np.dtype("float32")
# What is compressed: integer and boolean arrays (masks, counters, dates: mostly one value, they shrink 50-100x for
# a few ms) and our run bookkeeping (zero outside runs). Not the monitor's float arrays (the model coefficients and
# spreads, most of a state): zlib saves only 40 % of them and costs 0.5 s per megapixel on every save, which is
# most of an update step. Readers need nothing new: HDF5 records the filters of each variable.
COMPRESSED_KINDS = "biu"
COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": True}


@dataclass
class TileState:
    """Everything needed to continue monitoring one tile, plus where it sits on Earth."""

    tile_id: str
    crs: CRS
    transform: Affine
    monitor: MonitorState
    fingerprint: dict[str, Any]
    history_acquisitions: int
    last_history: str | None
    absorbed: list[str] = field(default_factory=list)
    updated: str | None = None
    # Where save_state last wrote it, and that file's stamp: while the file is unchanged, this object is what
    # load_state would read from it (see current_state).
    saved_as: tuple[Path, tuple[int, int, int]] | None = field(default=None, repr=False, compare=False)

    @property
    def last_key(self) -> str | None:
        """The newest acquisition the state has seen (history or monitoring)."""
        return self.absorbed[-1] if self.absorbed else self.last_history

    @property
    def last_time(self) -> dt.datetime | None:
        """last_key as an aware datetime."""
        key = self.last_key
        return dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC) if key else None


def state_path(state_dir: Path, tile_id: str) -> Path:
    """Where a tile's state lives."""
    return state_dir / f"{tile_id}.nc"


def lock_path(state_dir: Path, tile_id: str) -> Path:
    """The lock serialising writers of a tile's state (the pipeline's and restore's)."""
    return state_dir / f".{tile_id}.lock"


def _stored(value: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """The array as written, and the attributes that restore its in-memory dtype."""
    if value.dtype == np.float64:
        return value.astype(COMPACT_DTYPE), {DTYPE_ATTR: value.dtype.name}
    return value, {}


def checksum(ds: xr.Dataset) -> str:
    """SHA-256 of a state's content: every variable's name, dtype, shape and bytes, the coordinates, the metadata."""
    digest = hashlib.sha256()
    for name in sorted(ds.variables):
        values = np.ascontiguousarray(ds[name].values)
        restore_as = ds[name].attrs.get(DTYPE_ATTR, "")
        digest.update(f"{name}|{values.dtype.str}|{values.shape}|{restore_as}|".encode())
        digest.update(values.reshape(-1).view(np.uint8))  # the array's own bytes, not a copy of them
    digest.update(ds.attrs[META_ATTR].encode("utf-8"))
    return digest.hexdigest()


def _to_dataset(state: TileState) -> xr.Dataset:
    """Serialise: arrays become variables, scalars go to the JSON metadata attribute."""
    monitor = state.monitor.monitor
    variables: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for name, value in vars(monitor).items():
        if name in ("x", "y"):
            continue
        if isinstance(value, np.ndarray) and value.ndim == 2:
            stored, attrs = _stored(value)
            variables[name] = (("y", "x"), stored, attrs)
        elif isinstance(value, np.ndarray) and value.ndim == 3:
            stored, attrs = _stored(value)
            variables[name] = ((f"{name}_k", "y", "x"), stored, attrs)
        elif isinstance(value, np.generic):
            scalars[name] = value.item()  # numpy scalars lose their type in NetCDF attributes
        elif value is None or isinstance(value, bool | int | float | str):
            scalars[name] = value
        else:
            raise StateError(f"tile {state.tile_id}: cannot store monitor attribute {name} of type {type(value)}")
    if state.monitor.series:  # among the model's scalars, where earlier versions kept it
        scalars[SERIES_ATTR] = json.dumps(state.monitor.series)
    for name, value in state.monitor.extras.items():
        variables[EXTRA_PREFIX + name] = (("y", "x"), value)
    meta = {
        "format_version": FORMAT_VERSION,
        "tile_id": state.tile_id,
        "crs": state.crs.to_wkt(),
        "transform": list(state.transform)[:6],
        "monitor_class": type(monitor).__name__,
        "monitor_scalars": scalars,
        "empty": state.monitor.empty,
        "fingerprint": state.fingerprint,
        "history_acquisitions": state.history_acquisitions,
        "last_history": state.last_history,
        "absorbed": state.absorbed,
        "updated": state.updated,
    }
    ds = xr.Dataset(variables, coords={"x": monitor.x, "y": monitor.y})
    ds.attrs[META_ATTR] = json.dumps(meta)
    # The arrays stored narrower keep, in memory too, the values the file keeps: the state goes on from here
    # exactly as it would after load_state.
    for name, value in list(vars(monitor).items()):
        if name in ds.data_vars and DTYPE_ATTR in ds[name].attrs:
            if value.flags.writeable:
                value[...] = ds[name].values
            else:
                setattr(monitor, name, ds[name].values.astype(value.dtype))
    ds.attrs[CHECKSUM_ATTR] = checksum(ds)
    return ds


def _compressed(name: str, values: xr.DataArray) -> bool:
    """Whether a state variable is stored compressed (see COMPRESSED_KINDS)."""
    return values.dtype.kind in COMPRESSED_KINDS or str(name).startswith(EXTRA_PREFIX)


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """The netCDF encoding of a state's variables and coordinates."""
    # No _FillValue: NaN stays NaN bit for bit and integer arrays keep every value, so the checksum holds.
    encoding: dict[str, dict[str, Any]] = {
        name: {**(COMPRESSION if _compressed(name, var) else {}), "_FillValue": None}
        for name, var in ds.data_vars.items()
    }
    encoding.update({name: {"_FillValue": None} for name in ds.coords})
    return encoding


def save_state(state: TileState, path: Path, *, generations: int = 0) -> None:
    """Write the state atomically (temp file, fsync, rename); a crash leaves the previous state intact.

    With `generations` > 0 the file being replaced is kept as a generation first, and only the newest
    `generations` of them are kept afterwards.
    """
    state.updated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    ds = _to_dataset(state)
    encoding = _encoding(ds)
    # Temp files of a save killed midway; the caller holds the tile's lock, so none of them is being written.
    for leftover in path.parent.glob(f".{path.stem}.*.tmp{path.suffix}"):
        leftover.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        with NETCDF_LOCK:
            ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        if generations > 0:
            backups.keep_current(path)
    state.saved_as = (path, file_version(path))
    if generations > 0:
        backups.prune(path, generations)


def current_state(path: Path, known: TileState | None) -> TileState:
    """The state at `path`: `known` if save_state wrote it there and the file has not changed since, else loaded.

    Saves a tile the read of the state it has just saved (a fit's before its fast-forward, an update's before its
    report), ~50 ms per 10 MB state, with the same content: save_state left `known` as the file holds it.
    """
    return known if known is not None and is_current(path, known) else load_state(path)


def is_current(path: Path, known: TileState) -> bool:
    """Whether save_state wrote `known` at `path` and the file has not changed since."""
    if known.saved_as is None or known.saved_as[0] != path:
        return False
    try:
        return known.saved_as[1] == file_version(path)
    except OSError:
        return False  # gone


class BadStateFile(StateError):
    """A state file that is missing, unreadable or corrupt; `cause` says which, without the path."""

    def __init__(self, path: Path, cause: str) -> None:
        super().__init__(f"state {path} {cause}")
        self.cause = cause


def _read(path: Path, *, arrays: bool) -> tuple[xr.Dataset, dict[str, Any]]:
    """Open a state file, verify its checksum when the arrays are read, and parse its metadata."""
    if not path.exists():
        raise NotFittedError(f"no state at {path}: run `nrt-alerts fit` first")
    try:
        with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4") as opened:
            ds = opened.load() if arrays else opened
            raw = ds.attrs[META_ATTR]
            stored = ds.attrs.get(CHECKSUM_ATTR)
        # Hashing the loaded arrays needs no file: the other tiles' state I/O need not wait for it.
        actual = checksum(ds) if arrays and stored is not None else None
    except Exception as exc:  # HDF5 reports truncation and damaged chunks as RuntimeError, OSError, KeyError...
        raise BadStateFile(path, f"is unreadable: {type(exc).__name__}: {exc}") from exc
    if actual is not None and actual != stored:
        raise BadStateFile(path, f"is corrupt: checksum mismatch (stored {stored[:12]}, content {actual[:12]})")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise BadStateFile(path, f"is unreadable: its metadata is not JSON: {exc}") from exc
    if meta.get("format_version") not in READABLE_FORMATS:
        raise BadStateFile(path, f"has format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    if arrays and stored is None and meta["format_version"] >= 2:
        raise BadStateFile(path, "is corrupt: its checksum is missing")
    return ds, meta


def _open(path: Path, *, arrays: bool) -> tuple[xr.Dataset, dict[str, Any]]:
    """_read, with a failure turned into a message naming the tile and the newest good generation."""
    try:
        return _read(path, arrays=arrays)
    except StateError as exc:
        raise _explain(path, exc) from exc


@dataclass(frozen=True)
class Generation:
    """One kept version of a tile's state: 0 is the current file, 1 the newest earlier one, and so on."""

    number: int
    path: Path
    problem: str | None  # None: readable and its checksum matches
    meta: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        """Readable, checksum verified."""
        return self.problem is None

    @property
    def last_key(self) -> str | None:
        """Its newest acquisition."""
        return meta_last_key(self.meta) if self.meta else None


def check_file(path: Path, number: int = 0) -> Generation:
    """Read a state file completely and verify it; the problem found, if any, is in `problem`."""
    try:
        _, meta = _read(path, arrays=True)
    except BadStateFile as exc:
        return Generation(number, path, exc.cause, None)
    except NotFittedError:
        return Generation(number, path, "is missing", None)
    return Generation(number, path, None, meta)


def generations(path: Path) -> list[Generation]:
    """The current state file (generation 0) and every kept earlier one, each verified."""
    found = [check_file(path, 0)]
    found += [check_file(p, n) for n, p in enumerate(backups.generation_paths(path), start=1)]
    return found


def newest_good(path: Path) -> Generation | None:
    """The newest earlier generation that reads and verifies."""
    for n, p in enumerate(backups.generation_paths(path), start=1):
        generation = check_file(p, n)
        if generation.ok:
            return generation
    return None


def _explain(path: Path, exc: StateError) -> StateError:
    """The error for a bad state file: which tile, what is wrong, and the generation to restore (if any)."""
    tile = path.stem
    kept = backups.generation_paths(path)
    if isinstance(exc, NotFittedError) and not kept:
        return exc
    cause = f"state {path} is missing" if isinstance(exc, NotFittedError) else str(exc)
    good = newest_good(path)
    if good is None:
        advice = f"no good earlier generation is kept: run `nrt-alerts fit --tile {tile}` again"
    else:
        advice = (
            f"the newest good generation is {good.number} (last acquisition {good.last_key}): "
            f"run `nrt-alerts restore --tile {tile} --generation {good.number}`"
        )
    return StateError(f"tile {tile}: {cause}; {advice}")


def read_state_meta(path: Path) -> dict[str, Any]:
    """The state's metadata (fingerprint, absorbed acquisitions, georeference) without reading its arrays."""
    return _open(path, arrays=False)[1]


def meta_last_key(meta: dict[str, Any]) -> str | None:
    """The newest acquisition a state has seen, from its metadata (as TileState.last_key)."""
    return meta["absorbed"][-1] if meta["absorbed"] else meta["last_history"]


def load_state(path: Path) -> TileState:
    """Read a state written by save_state; raise NotFittedError if absent, StateError if unreadable."""
    ds, meta = _open(path, arrays=True)
    cls = MONITOR_CLASSES[meta["monitor_class"]]
    attrs: dict[str, Any] = dict(meta["monitor_scalars"])
    series = json.loads(attrs.pop(SERIES_ATTR, None) or "{}")
    extras = {}
    for name, var in ds.data_vars.items():
        if name.startswith(EXTRA_PREFIX):
            key = name.removeprefix(EXTRA_PREFIX)
            extras[key] = var.values.astype(EXTRA_LAYERS[key], copy=False)
        else:
            attrs[name] = var.values.astype(var.attrs.get(DTYPE_ATTR, var.dtype), copy=False)
    attrs["x"] = ds["x"].values
    attrs["y"] = ds["y"].values
    monitor = nrt_boundary.restore(cls, attrs)
    return TileState(
        tile_id=meta["tile_id"],
        crs=CRS.from_wkt(meta["crs"]),
        transform=Affine(*meta["transform"]),
        monitor=MonitorState(monitor, extras, empty=meta["empty"], series=series),
        fingerprint=meta["fingerprint"],
        history_acquisitions=meta["history_acquisitions"],
        last_history=meta["last_history"],
        absorbed=list(meta["absorbed"]),
        updated=meta["updated"],
    )
