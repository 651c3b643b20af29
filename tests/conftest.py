"""Shared fixtures: one small demo archive per session, a full static-catalog run, and a real HTTP server."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import uvicorn

from catalog.store import CatalogLayout, read_index
from scheduler.config import Config, load_config
from scheduler.demo import DemoArchive, DemoSpec, generate_demo
from scheduler.demo_setup import write_demo_config
from scheduler.logs import HANDLER_NAME
from scheduler.pipeline import Pipeline, RunResult
from server.app import create_app
from server.settings import ServerSettings

# 256 x 128 px in two 128 px tiles: big enough for a dozen clear-cuts, small enough for CI.
TEST_SPEC = DemoSpec(width=256, height=128)
TILE_SIZE = 128
# Updates in three steps: the fast-forward to the demo clock's start, then two scheduled-style runs.
RUN_STEPS = (
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2024, 3, 15, tzinfo=dt.UTC),
    dt.datetime(2024, 6, 30, 23, 59, tzinfo=dt.UTC),
)


@pytest.fixture(autouse=True)
def cli_logging() -> Iterator[None]:
    """A test that runs the CLI in-process leaves its log handler on the root logger, writing to that test's
    captured stderr: removed after every test (with the level restored), or a later log line meets a closed file."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    """The demo archive every test shares (read-only)."""
    return generate_demo(tmp_path_factory.mktemp("demo") / "archive", TEST_SPEC)


def make_workspace(root: Path, archive: DemoArchive) -> Config:
    """A deployment folder whose config monitors the shared archive (linked, not copied)."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / "archive"
    if not link.exists():
        link.symlink_to(archive.root, target_is_directory=True)
    return load_config(write_demo_config(root, archive.spec, tile_size=TILE_SIZE))


def clone_workspace(root: Path, source: Config, archive: DemoArchive) -> Config:
    """A new deployment folder holding a copy of `source`'s outputs (states, catalog, logs): its own to change."""
    cfg = make_workspace(root, archive)
    shutil.copytree(source.output.dir, cfg.output.dir, symlinks=True)
    return cfg


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive) -> Config:
    """Both tiles of the shared archive fitted on its history, once per session (read-only: clone or copy from it)."""
    cfg = make_workspace(tmp_path_factory.mktemp("fitted"), demo_archive)
    result = Pipeline(cfg).run_fit()
    assert not result.failed
    return cfg


@pytest.fixture(scope="session")
def forwarded(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive, fitted: Config) -> Config:
    """`fitted`, then updated to RUN_STEPS[0] and published, once per session (read-only: take a clone_workspace)."""
    cfg = clone_workspace(tmp_path_factory.mktemp("forwarded"), fitted, demo_archive)
    result = Pipeline(cfg).run_update(RUN_STEPS[0])
    assert not result.failed
    return cfg


@dataclass
class DemoRun:
    """A deployment after fit, fast-forward and updates."""

    cfg: Config
    pipeline: Pipeline
    fit: RunResult
    updates: list[RunResult]


def run_demo(cfg: Config, pipeline: Pipeline | None = None) -> DemoRun:
    """Fit, then absorb up to each of RUN_STEPS."""
    pipeline = pipeline or Pipeline(cfg)
    fit = pipeline.run_fit()
    updates = [pipeline.run_update(until) for until in RUN_STEPS]
    return DemoRun(cfg, pipeline, fit, updates)


@pytest.fixture(scope="session")
def static_run(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive) -> DemoRun:
    """The whole pipeline on the static demo catalog (shared; tests must not modify it)."""
    cfg = make_workspace(tmp_path_factory.mktemp("static-run"), demo_archive)
    return run_demo(cfg)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(app: object, host: str = "127.0.0.1") -> Iterator[str]:
    """Run an ASGI app with uvicorn on a loopback port in a thread, as `nrt-alerts serve` does (no uvicorn proxy
    headers); yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{'[::1]' if host == '::1' else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serving(settings: ServerSettings) -> Iterator[str]:
    """Run the app built around `settings` on a loopback port; yield its base URL."""
    with serve_app(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def static_server(static_run: DemoRun) -> Iterator[str]:
    """The static run's outputs served over real HTTP."""
    with serving(ServerSettings(stac_dir=static_run.cfg.output.stac_dir)) as url:
        yield url


def latest_layers(run: DemoRun) -> dict[str, np.ndarray]:
    """The latest publication's mosaics as arrays on the area grid, by asset."""
    layout = CatalogLayout(run.cfg.output.stac_dir)
    arrays = {}
    for asset, rel in read_index(layout).latest.mosaics.items():
        with rasterio.open(layout.collection_dir / rel) as src:
            arrays[asset] = src.read(1)
    return arrays


def truth(run: DemoRun) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth disturbance day per pixel (0 = none), and the forest mask."""
    archive = run.cfg.source.catalog.parent
    with rasterio.open(archive / "ground_truth.tif") as src:
        days = src.read(1)
    with rasterio.open(archive / "forest_mask.tif") as src:
        forest = src.read(1) == 1
    return days, forest


# The markers of whole modules, in one table (durations from `pytest --durations=0`, 2 cores): `pytest -m "not
# slow"` is the fast local loop (about 2 minutes), CI runs everything. Tests also carry their own markers.
MODULE_MARKERS: dict[str, tuple[str, ...]] = {
    "test_accuracy_matrix": ("slow",),
    "test_backups": ("slow",),
    "test_bench": ("slow",),
    "test_cli": ("slow",),
    "test_concurrency": ("slow",),
    "test_crash": ("slow", "crash"),
    "test_demo": ("slow",),
    "test_disk_full": ("slow",),
    "test_evaluation": ("slow",),
    "test_faults": ("slow",),
    "test_fuzz": ("slow",),
    "test_hard_suite": ("slow",),
    "test_kernels": ("slow",),
    "test_load_publication": ("slow",),
    "test_logs": ("slow",),
    "test_nrt_boundary": ("slow",),
    "test_nrt_import": ("slow",),
    "test_parallel": ("slow",),
    "test_pipeline_stac_api": ("slow", "pgstac"),
    "test_proxy": ("slow",),
    "test_published_colours": ("slow", "qgis"),
    "test_regressors": ("slow",),
    "test_stac_api": ("slow", "pgstac"),
    "test_staging": ("slow",),
    "test_web_map": ("slow", "browser"),
    "test_web_map_tools": ("slow", "browser"),
    "test_wms_qgis": ("slow", "qgis"),
}


# Single tests of otherwise quick modules that take over 10 s.
SLOW_TESTS = {"test_monitor_detects_the_planted_drop[iqr-RIRLS]"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add MODULE_MARKERS and SLOW_TESTS' markers (pgstac and browser tests are slow too: a database, a browser)."""
    for item in items:
        names = MODULE_MARKERS.get(item.module.__name__.rsplit(".", 1)[-1], ())
        if item.name in SLOW_TESTS:
            names = (*names, "slow")
        if item.get_closest_marker("pgstac") or item.get_closest_marker("browser"):
            names = (*names, "slow")
        for name in dict.fromkeys(names):
            item.add_marker(getattr(pytest.mark, name))
