"""Generate (or reuse) a demo archive on disk, and reopen an existing one."""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import time
from pathlib import Path

from tqdm import tqdm

from scheduler.demo.bands import NODATA, REFLECTANCE_KEYS, SCL_KEY
from scheduler.demo.cog import write_cog
from scheduler.demo.grid import Grid
from scheduler.demo.groundtruth import write_forest_mask, write_ground_truth
from scheduler.demo.hard import CLASS_CODES, class_raster
from scheduler.demo.landcover import make_landcover
from scheduler.demo.marker import MARKER_NAME, marker_matches, read_marker, write_marker
from scheduler.demo.scenarios import plan_events
from scheduler.demo.scene import SceneContext, choose_overcast, render_scene
from scheduler.demo.schedule import acquisition_schedule, duplicated
from scheduler.demo.spec import SUITES, DemoArchive, DemoSpec
from scheduler.demo.stac import build_item, item_paths, save_catalog

logger = logging.getLogger(__name__)

ITEM_PREFIX = "S2X_DEMO_"


def generate_demo(root: Path, spec: DemoSpec = DemoSpec(), *, progress: bool = False) -> DemoArchive:
    """Write a synthetic Sentinel-2 L2A archive for `spec` into root, unless a complete one is already there."""
    root = Path(root)
    if marker_matches(root, spec) and (root / "catalog.json").exists():
        logger.info("demo archive in %s is up to date", root)
        return load_demo(root)

    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    # Drop the marker first: an interrupted run must never look complete.
    (root / MARKER_NAME).unlink(missing_ok=True)

    grid = Grid.from_spec(spec)
    schedule = acquisition_schedule(spec)
    landcover = make_landcover(spec.seed, grid)
    events = plan_events(spec, grid, landcover)
    archive = _archive(root, spec, [acq.datetime for acq in schedule])
    write_forest_mask(landcover.forest, grid, archive.forest_mask_path)
    write_ground_truth(
        events, grid, archive.ground_truth_path, archive.ground_truth_raster_path, archive.ground_truth_kind_path
    )
    if archive.ground_truth_class_path is not None:
        codes = ", ".join(f"{code} {name}" for name, code in CLASS_CODES.items())
        write_cog(
            archive.ground_truth_class_path,
            class_raster(events, landcover),
            grid,
            tags={"CLASS_CODES": json.dumps(CLASS_CODES), "DESCRIPTION": f"Pixel class: {codes}"},
        )
    copies = {acq.index: acq for acq in duplicated(spec, schedule)}
    _remove_stale_items(root, {acq.item_id for acq in schedule} | {acq.item_id for acq in copies.values()})

    context = SceneContext(spec, landcover, events, choose_overcast(spec, [acq.index for acq in schedule]))
    footprint = grid.footprint_wgs84()
    items = []
    for acq in tqdm(schedule, desc="demo acquisitions", unit="scene", disable=not progress):
        scene = render_scene(context, acq)
        # A reprocessed copy repeats the acquisition's pixels under its own item id, on the same day.
        for published in (acq, copies[acq.index]) if acq.index in copies else (acq,):
            _, asset_paths = item_paths(root, published.item_id)
            for key in REFLECTANCE_KEYS:
                write_cog(asset_paths[key], scene.bands[key], grid, nodata=NODATA)
            write_cog(asset_paths[SCL_KEY], scene.scl, grid, nodata=NODATA)
            items.append(build_item(published, grid, footprint, root, scene.cloud_cover))

    save_catalog(root, spec, grid, items)
    write_marker(root, spec)
    logger.info(
        "generated %s demo archive in %s: %d acquisitions, %d events, %.1f s",
        spec.scenario,
        root,
        len(schedule),
        len(events),
        time.perf_counter() - started,
    )
    return archive


def load_demo(root: Path) -> DemoArchive:
    """Reopen a complete demo archive; FileNotFoundError if root holds none."""
    root = Path(root)
    spec = read_marker(root)
    archive = _archive(root, spec, [acq.datetime for acq in acquisition_schedule(spec)])
    if not archive.catalog_path.exists():
        raise FileNotFoundError(f"{archive.catalog_path} is missing")
    return archive


def _archive(root: Path, spec: DemoSpec, dates: list[datetime.datetime]) -> DemoArchive:
    """Build the archive handle for a spec in root."""
    return DemoArchive(
        root=root,
        catalog_path=root / "catalog.json",
        forest_mask_path=root / "forest_mask.tif",
        ground_truth_path=root / "ground_truth.geojson",
        ground_truth_raster_path=root / "ground_truth.tif",
        ground_truth_kind_path=root / "ground_truth_kind.tif",
        dates=dates,
        spec=spec,
        ground_truth_class_path=root / "ground_truth_class.tif" if spec.scenario in SUITES else None,
    )


def _remove_stale_items(root: Path, keep: set[str]) -> None:
    """Delete item folders left by an earlier spec, so the folder matches the new catalog."""
    items_dir = root / "items"
    if not items_dir.is_dir():
        return
    for folder in items_dir.iterdir():
        if folder.is_dir() and folder.name.startswith(ITEM_PREFIX) and folder.name not in keep:
            shutil.rmtree(folder)
