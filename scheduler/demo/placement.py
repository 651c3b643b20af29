"""Where and when events happen: dates spread over the disturbance window, polygons, blobs and pixel-exact outlines."""

from __future__ import annotations

import datetime

import numpy as np
import shapely
import shapely.affinity
from rasterio.features import rasterize, shapes

from scheduler.demo.fields import smooth_field
from scheduler.demo.grid import Grid
from scheduler.demo.spec import MIN_POST_EVENT_DAYS, DemoSpec

Geometry = shapely.Polygon | shapely.MultiPolygon

MAX_ATTEMPTS = 400


def event_window(spec: DemoSpec) -> tuple[datetime.date, datetime.date]:
    """First and last day an event may start: [disturbance_start, end - 60 days]."""
    return spec.disturbance_start, spec.end - datetime.timedelta(days=MIN_POST_EVENT_DAYS)


def spread_dates(rng: np.random.Generator, first: datetime.date, last: datetime.date, n: int) -> list[datetime.date]:
    """N dates stratified so they spread evenly over [first, last], in random order."""
    span = (last - first).days
    offsets = np.floor((np.arange(n) + rng.random(n)) / max(n, 1) * (span + 1)).astype(int)
    # Shuffle so the first (hardest to place, largest-range) shapes are not always the earliest.
    return [first + datetime.timedelta(days=int(d)) for d in rng.permutation(offsets)]


def place_polygon(
    rng: np.random.Generator,
    grid: Grid,
    occupied: np.ndarray,
    area_ha: tuple[float, float],
    min_pixels: int,
    *,
    centred_on_free: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[shapely.Polygon, np.ndarray, np.ndarray] | None:
    """Draw a polygon of log-uniform area whose pixels (and a one-pixel margin) are all free; None if none fits.

    Returns the polygon, the mask of the pixels whose centre it holds, and its footprint including the margin
    (to add to `occupied`). With `centred_on_free`, polygons are centred on free pixels rather than anywhere,
    which finds room far quicker when little of the grid is free.
    """
    free = np.flatnonzero(~occupied) if centred_on_free else None
    if free is not None and free.size == 0:
        return None
    px_area_ha = grid.resolution**2 / 1e4
    max_px = area_ha[1] / px_area_ha
    for attempt in range(max_attempts):
        # Shrink the size range when big patches keep failing to fit.
        upper = max(max_px / 2 ** (attempt // 50), area_ha[0] / px_area_ha)
        area_px = np.exp(rng.uniform(np.log(area_ha[0] / px_area_ha), np.log(upper)))
        centre = None
        if free is not None:
            row, col = np.unravel_index(rng.choice(free), grid.shape)
            centre = (col + 0.5, row + 0.5)
        polygon = random_polygon(rng, grid, area_px, centre)
        if polygon is None:
            continue
        inside = rasterize([(polygon, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8)
        # Keep a one-pixel margin around every shape, so shapes never touch.
        footprint = rasterize(
            [(polygon.buffer(grid.resolution), 1)],
            out_shape=grid.shape,
            transform=grid.transform,
            all_touched=True,
            dtype=np.uint8,
        ).astype(bool)
        if inside.sum() < min_pixels or (footprint & occupied).any():
            continue
        return polygon, inside.astype(bool), footprint
    return None


def random_polygon(
    rng: np.random.Generator, grid: Grid, area_px: float, centre: tuple[float, float] | None = None
) -> shapely.Polygon | None:
    """Draw a rotated rectangle or irregular quadrilateral of about `area_px` pixels, in native coordinates.

    The centre, (col, row) in pixel units, is drawn at random unless given.
    """
    res = grid.resolution
    if rng.random() < 0.5:
        aspect = rng.uniform(1.0, 2.5)
        half_w, half_h = np.sqrt(area_px * aspect) / 2, np.sqrt(area_px / aspect) / 2
        shape = shapely.box(-half_w, -half_h, half_w, half_h)
    else:
        angles = np.deg2rad(45.0 + 90.0 * np.arange(4) + rng.uniform(-25, 25, 4))
        radii = rng.uniform(0.7, 1.3, 4)
        shape = shapely.Polygon(np.column_stack([radii * np.cos(angles), radii * np.sin(angles)]))
        factor = np.sqrt(area_px / shape.area)
        shape = shapely.affinity.scale(shape, factor, factor, origin=(0, 0))
    shape = shapely.affinity.rotate(shape, rng.uniform(0, 180), origin=(0, 0))
    minx, miny, maxx, maxy = shape.bounds
    # Centre (in pixel units, y down) such that the whole polygon stays one pixel inside the grid.
    lo_c, hi_c = 1 - minx, grid.width - 1 - maxx
    lo_r, hi_r = 1 + maxy, grid.height - 1 + miny
    if lo_c >= hi_c or lo_r >= hi_r:
        return None
    if centre is None:
        col, row = rng.uniform(lo_c, hi_c), rng.uniform(lo_r, hi_r)
    elif lo_c <= centre[0] <= hi_c and lo_r <= centre[1] <= hi_r:
        col, row = centre
    else:
        return None
    # Pixel units -> native CRS: x grows with columns, y shrinks with rows.
    native = shapely.affinity.affine_transform(
        shape, [res, 0, 0, res, grid.origin_x + col * res, grid.origin_y - row * res]
    )
    return shapely.set_precision(native, res / 1000)


def blob(rng: np.random.Generator, grid: Grid, sigma_px: float, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random blobs covering `fraction` of the grid, and their depth (0 at the edge, 1 at the core)."""
    field = smooth_field(rng, grid.shape, sigma_px)
    threshold = np.quantile(field, 1.0 - fraction)
    mask = field > threshold
    depth = np.clip((field - threshold) / max(float(field.max() - threshold), 1e-6), 0.0, 1.0)
    return mask, depth.astype(np.float32)


def mask_parts(mask: np.ndarray, grid: Grid, min_pixels: int = 1) -> list[shapely.Polygon]:
    """Pixel-exact outlines (native CRS, holes included) of the 4-connected parts of a mask with enough pixels."""
    if not mask.any():
        return []
    found = shapes(mask.astype(np.uint8), mask=mask, connectivity=4, transform=grid.transform)
    parts = [shapely.geometry.shape(geometry) for geometry, _ in found]
    px_area = grid.resolution**2
    # Outlines follow pixel edges, so area / pixel area is the exact pixel count.
    return [part for part in parts if part.area >= (min_pixels - 0.5) * px_area]


def pixel_geometry(parts: list[shapely.Polygon], grid: Grid) -> tuple[Geometry, np.ndarray]:
    """One geometry of pixel-exact parts, and the mask of the pixels whose centre it holds."""
    geometry = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    inside = rasterize([(geometry, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8)
    return geometry, inside.astype(bool)
