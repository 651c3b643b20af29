"""A tile's monitor state on disk: one NetCDF file, so state and record of absorbed acquisitions commit together.

The file holds nrt's arrays, our run bookkeeping, the georeference and the list of absorbed acquisitions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from catalog.atomic import atomic_path
from scheduler.errors import NotFittedError, StateError
from scheduler.monitors import EXTRA_LAYERS, MONITOR_CLASSES, MonitorState

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_ATTR = "nrt_alerts"
EXTRA_PREFIX = "extra_"


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


def _to_dataset(state: TileState) -> xr.Dataset:
    """Serialise: arrays become variables, scalars go to the JSON metadata attribute."""
    monitor = state.monitor.monitor
    variables: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for name, value in vars(monitor).items():
        if name in ("x", "y"):
            continue
        if isinstance(value, np.ndarray) and value.ndim == 2:
            variables[name] = (("y", "x"), value)
        elif isinstance(value, np.ndarray) and value.ndim == 3:
            variables[name] = ((f"{name}_k", "y", "x"), value)
        elif isinstance(value, np.generic):
            scalars[name] = value.item()  # numpy scalars lose their type in NetCDF attributes
        elif value is None or isinstance(value, bool | int | float | str):
            scalars[name] = value
        else:
            raise StateError(f"tile {state.tile_id}: cannot store monitor attribute {name} of type {type(value)}")
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
    return ds


def save_state(state: TileState, path: Path) -> None:
    """Write the state atomically (temp file, fsync, rename); a crash leaves the previous state intact."""
    state.updated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    ds = _to_dataset(state)
    encoding = {name: {"zlib": True, "complevel": 4} for name in ds.data_vars}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def _open(path: Path, *, arrays: bool) -> tuple[xr.Dataset, dict[str, Any]]:
    """Open a state file and check its metadata; load the arrays only when asked."""
    if not path.exists():
        raise NotFittedError(f"no state at {path}: run `nrt-alerts fit` first")
    try:
        with xr.open_dataset(path, engine="netcdf4") as opened:
            ds = opened.load() if arrays else opened
            meta = json.loads(ds.attrs[META_ATTR])
    except (OSError, ValueError, KeyError) as exc:
        raise StateError(f"state {path} is unreadable: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise StateError(f"state {path} has format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    return ds, meta


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
    # Bypass __init__: nrt's constructors treat state arrays as optional kwargs inconsistently.
    monitor = cls.__new__(cls)
    attrs: dict[str, Any] = dict(meta["monitor_scalars"])
    extras = {}
    for name, var in ds.data_vars.items():
        if name.startswith(EXTRA_PREFIX):
            key = name.removeprefix(EXTRA_PREFIX)
            extras[key] = var.values.astype(EXTRA_LAYERS[key], copy=False)
        else:
            attrs[name] = var.values
    attrs["x"] = ds["x"].values
    attrs["y"] = ds["y"].values
    vars(monitor).update(attrs)
    return TileState(
        tile_id=meta["tile_id"],
        crs=CRS.from_wkt(meta["crs"]),
        transform=Affine(*meta["transform"]),
        monitor=MonitorState(monitor, extras, empty=meta["empty"]),
        fingerprint=meta["fingerprint"],
        history_acquisitions=meta["history_acquisitions"],
        last_history=meta["last_history"],
        absorbed=list(meta["absorbed"]),
        updated=meta["updated"],
    )
