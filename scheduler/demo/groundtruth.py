"""Ground truth of the planted disturbances (GeoJSON + raster) and the forest mask."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import shapely

from scheduler.demo.cog import write_cog
from scheduler.demo.events import Event
from scheduler.demo.grid import Grid, reproject_polygon

EPOCH = datetime.date(1970, 1, 1)


def days_since_epoch(day: datetime.date) -> int:
    """Days since 1970-01-01, as stored in the ground-truth raster."""
    return (day - EPOCH).days


def ground_truth_raster(events: list[Event], grid: Grid) -> np.ndarray:
    """uint16 disturbance day (days since 1970-01-01) per pixel, 0 where undisturbed."""
    out = np.zeros(grid.shape, dtype=np.uint16)
    for event in events:
        out[event.rows, event.cols] = days_since_epoch(event.date)
    return out


def ground_truth_geojson(events: list[Event], grid: Grid) -> dict:
    """RFC 7946 FeatureCollection (EPSG:4326) with one feature per event."""
    to_wgs84 = grid.to_wgs84()
    features = [
        {
            "type": "Feature",
            "id": event.id,
            "geometry": json.loads(shapely.to_geojson(reproject_polygon(event.polygon, to_wgs84))),
            "properties": {
                "id": event.id,
                "kind": event.kind,
                "date": event.date.isoformat(),
                "area_ha": round(event.polygon.area / 1e4, 4),
                "n_pixels": event.n_pixels,
                "native_wkt": event.polygon.wkt,
                "crs": grid.crs_code,
            },
        }
        for event in events
    ]
    return {"type": "FeatureCollection", "features": features}


def write_ground_truth(events: list[Event], grid: Grid, geojson_path: Path, raster_path: Path) -> None:
    """Write both ground-truth files."""
    geojson_path.parent.mkdir(parents=True, exist_ok=True)
    geojson_path.write_text(json.dumps(ground_truth_geojson(events, grid), indent=1), encoding="utf-8")
    write_cog(raster_path, ground_truth_raster(events, grid), grid)


def write_forest_mask(forest: np.ndarray, grid: Grid, path: Path) -> None:
    """uint8 forest mask: 1 forest, 0 anything else."""
    write_cog(path, forest.astype(np.uint8), grid)
