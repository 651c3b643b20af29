"""Read one published version's alert layers (status and detection date) through its mosaic VRTs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from catalog.errors import CatalogError
from catalog.mosaic import AreaGrid
from catalog.store import CatalogLayout, read_index
from scheduler.evaluation.errors import EvaluationError


@dataclass(frozen=True)
class PublishedAlerts:
    """The status and date layers of one publication on the area grid."""

    version: str
    datetime: dt.datetime
    grid: AreaGrid
    status: np.ndarray
    date: np.ndarray
    confirmed: np.ndarray | None = None  # confirmation dates (publications before this layer existed lack it)


def _read_layer(path: Path) -> tuple[np.ndarray, AreaGrid]:
    """Read band 1 of a mosaic VRT and its grid."""
    try:
        with rasterio.open(path) as src:
            grid = AreaGrid(crs=src.crs, transform=src.transform, width=src.width, height=src.height)
            return src.read(1), grid
    except RasterioIOError as exc:
        raise EvaluationError(f"cannot read the published mosaic {path}: {exc}") from exc


def read_published(stac_dir: Path, version: str | None = None) -> PublishedAlerts:
    """The publication `version` (latest when None or 'latest'), read from the catalog, never the states."""
    layout = CatalogLayout(stac_dir)
    try:
        index = read_index(layout)
    except CatalogError as exc:
        raise EvaluationError(str(exc)) from exc
    if not index.publications:
        raise EvaluationError(f"nothing has been published in {stac_dir} yet: run `nrt-alerts fit` first")
    try:
        publication = index.get(version)
    except CatalogError as exc:
        recent = ", ".join(p.id for p in index.publications[-5:])
        raise EvaluationError(f"no publication {version!r} in {stac_dir}; the most recent: {recent}") from exc
    missing = [asset for asset in ("status", "date") if asset not in publication.mosaics]
    if missing:
        raise EvaluationError(f"publication {publication.id} has no {' or '.join(missing)} mosaic")
    status, grid = _read_layer(layout.collection_dir / publication.mosaics["status"])
    date, date_grid = _read_layer(layout.collection_dir / publication.mosaics["date"])
    if date_grid != grid:
        raise EvaluationError(f"publication {publication.id}: the status and date mosaics are on different grids")
    confirmed = None
    if "confirmed" in publication.mosaics:
        confirmed, _ = _read_layer(layout.collection_dir / publication.mosaics["confirmed"])
    return PublishedAlerts(publication.id, publication.datetime, grid, status, date, confirmed)
