"""Ground truth of the planted events (GeoJSON + disturbance-date raster + kind raster) and the forest mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely

from catalog.encoding import days_since_epoch
from scheduler.demo.cog import write_cog
from scheduler.demo.events import KIND_CODES, Event
from scheduler.demo.grid import Grid, reproject_geometry


def ground_truth_raster(events: list[Event], grid: Grid) -> np.ndarray:
    """uint16 disturbance day (days since 1970-01-01) per pixel, 0 where undisturbed; look-alikes are left out."""
    out = np.zeros(grid.shape, dtype=np.uint16)
    for event in events:
        if event.disturbance:
            out[event.rows, event.cols] = days_since_epoch(event.date)
    return out


def ground_truth_kind_raster(events: list[Event], grid: Grid) -> np.ndarray:
    """uint8 KIND_CODES code per pixel (0: nothing planted), look-alikes included; disturbances win overlaps."""
    out = np.zeros(grid.shape, dtype=np.uint8)
    for event in sorted(events, key=lambda e: e.disturbance):
        out[event.rows, event.cols] = KIND_CODES[event.kind]
    return out


def ground_truth_geojson(events: list[Event], grid: Grid) -> dict:
    """RFC 7946 FeatureCollection (EPSG:4326) with one feature per event.

    `date` is when the event starts; `end` when its effect is over or complete (null: open-ended); `disturbance`
    tells real forest disturbances (also in ground_truth.tif) from look-alikes such as drought and haze.
    """
    to_wgs84 = grid.to_wgs84()
    features = []
    for event in events:
        properties = {
            "id": event.id,
            "kind": event.kind,
            "date": event.date.isoformat(),
            "end": event.end.isoformat() if event.end else None,
            "disturbance": event.disturbance,
            "area_ha": round(event.polygon.area / 1e4, 4),
            "n_pixels": event.n_pixels,
            "native_wkt": event.polygon.wkt,
            "crs": grid.crs_code,
        }
        if event.detail is not None:
            properties["detail"] = event.detail
        features.append(
            {
                "type": "Feature",
                "id": event.id,
                "geometry": json.loads(shapely.to_geojson(reproject_geometry(event.polygon, to_wgs84))),
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_ground_truth(events: list[Event], grid: Grid, geojson_path: Path, raster_path: Path, kind_path: Path) -> None:
    """Write the three ground-truth files."""
    geojson_path.parent.mkdir(parents=True, exist_ok=True)
    geojson_path.write_text(json.dumps(ground_truth_geojson(events, grid), indent=1), encoding="utf-8")
    write_cog(raster_path, ground_truth_raster(events, grid), grid)
    codes = ", ".join(f"{code} {kind}" for kind, code in KIND_CODES.items())
    write_cog(
        kind_path,
        ground_truth_kind_raster(events, grid),
        grid,
        tags={"KIND_CODES": json.dumps(KIND_CODES), "DESCRIPTION": f"Planted event kind: 0 none, {codes}"},
    )


def write_forest_mask(forest: np.ndarray, grid: Grid, path: Path) -> None:
    """uint8 forest mask: 1 forest, 0 anything else."""
    write_cog(path, forest.astype(np.uint8), grid)
