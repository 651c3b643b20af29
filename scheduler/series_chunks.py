"""The series chunks of a tile (index values per absorbed acquisition, for the click panel's plot), via the catalog.

catalog/series.py writes and reads chunks; this module names them from the config, feeds them the loaded data, and
keeps the published names in MonitorState.series, which the state file saves with the acquisitions it describes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import xarray as xr

from catalog.series import ChunkWriter
from catalog.store import CatalogLayout
from scheduler.config import Config
from scheduler.keys import acquisition_key
from scheduler.monitors.base import MonitorState


def series_chunks(state: MonitorState) -> list[str]:
    """Names of the series chunks holding every acquisition the state absorbed (history first)."""
    return list(state.series.get("chunks", []))


def series_data_key(cfg: Config) -> str:
    """What the published index values depend on (index and how the imagery is read), hashed into chunk names."""
    source = cfg.source.model_dump(
        mode="json", include={"collection", "bands", "mask_band", "mask_valid", "scale", "offset", "nodata"}
    )
    text = json.dumps({"index": cfg.index.name, "source": source}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def series_writer(tile: Any, keys: Sequence[str], cfg: Config) -> ChunkWriter:
    """A writer for the chunk of the acquisitions `keys` over the whole tile (fed block by block by a fit)."""
    return ChunkWriter(
        CatalogLayout(cfg.output.stac_dir).collection_dir,
        tile.id,
        keys,
        width=tile.width,
        height=tile.height,
        crs=tile.crs,
        transform=tile.transform,
        data_key=series_data_key(cfg),
        index=cfg.index.name,
    )


def note_series(state: MonitorState, name: str, cfg: Config) -> None:
    """Note a published chunk in the state: a fitted state (no chunks yet) starts the list, an update appends."""
    chunks = [c for c in series_chunks(state) if c != name]
    start = (cfg.history.end + dt.timedelta(days=1)).isoformat()
    state.series = {"chunks": [*chunks, name], "monitoring_start": start}


def record_series(state: MonitorState, tile: Any, data: xr.DataArray, keys: Sequence[str], cfg: Config) -> None:
    """Publish the index values of the absorbed acquisitions `keys` as one chunk and note it in the state.

    Call before the state is saved: a crash in between leaves an unreferenced chunk that the re-run reuses.
    """
    if not keys:
        return
    wanted = set(keys)
    positions = [i for i, time in enumerate(data.time.values) if acquisition_key(time) in wanted]
    values = data.values if len(positions) == data.sizes["time"] else data.isel(time=positions).values
    writer = series_writer(tile, [acquisition_key(data.time.values[i]) for i in positions], cfg)
    writer.write(0, values)
    note_series(state, writer.close(), cfg)
