"""Assets in object storage: a fit and an update through moto's S3 API and through a slow HTTP server give the
states and publications of local files, with transient errors retried, many requests in flight at once, and no
more requests per asset than its header and the blocks the tile covers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from remote_servers import Served, http_files, moto_s3, remote_catalog, upload_tree
from test_faults import assert_same_state, states

from catalog.store import CatalogLayout, read_index
from scheduler.config import Config
from scheduler.demo import DemoArchive, DemoSpec, generate_demo
from scheduler.pipeline import Pipeline
from scheduler.state import TileState

from conftest import make_workspace

pytestmark = pytest.mark.slow  # whole pipeline runs

# 64 x 64 px, one acquisition every 30 days: 24 dates of history (2021-2022), 6 to monitor.
SPEC = DemoSpec(width=64, height=64, end=dt.date(2023, 6, 30), revisit_days=30, n_clearcuts=2)
UNTIL = dt.datetime(2023, 6, 30, 23, 59, tzinfo=dt.UTC)
LATENCY_S = 0.04  # a cloud region away
READ = ("nir08", "red", "scl")  # the NDVI bands and the cloud mask


@dataclass
class Run:
    """A deployment after its fit and one update: tile states and the latest publication's mosaics."""

    pipeline: Pipeline
    states: dict[str, TileState]
    layers: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return generate_demo(tmp_path_factory.mktemp("remote-demo") / "archive", SPEC)


def deployment(root: Path, archive: DemoArchive, catalog: Path | None = None, **source: object) -> Pipeline:
    """The demo's deployment in one 64 px tile, reading the catalog given (else the local one)."""
    cfg: Config = make_workspace(root, archive)
    cfg = cfg.model_copy(update={"area": cfg.area.model_copy(update={"tile_size": 64})})
    updates = {"catalog": catalog or cfg.source.catalog, "retries": 2, "backoff_seconds": 0.01, **source}
    return Pipeline(cfg.model_copy(update={"source": cfg.source.model_copy(update=updates)}))


def fit_and_update(pipeline: Pipeline) -> Run:
    """Fit, then absorb everything up to UNTIL; both runs must succeed."""
    for result in (pipeline.run_fit(), pipeline.run_update(UNTIL)):
        assert not result.failed, [t.error for t in result.failed]
    layout = CatalogLayout(pipeline.cfg.output.stac_dir)
    layers = {}
    for asset, rel in read_index(layout).latest.mosaics.items():
        with rasterio.open(layout.collection_dir / rel) as src:
            layers[asset] = src.read(1)
    return Run(pipeline, states(pipeline), layers)


@pytest.fixture(scope="module")
def local(archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The reference: the same deployment reading the local files."""
    return fit_and_update(deployment(tmp_path_factory.mktemp("local"), archive))


@pytest.fixture
def http(archive: DemoArchive) -> Iterator[Served]:
    """The archive on an HTTP server with range requests, 40 ms per request.

    A server per test: at a new port, its URLs are new to GDAL's cache, which outlives a run in the process.
    """
    with http_files(archive.root, LATENCY_S) as served:
        yield served


def assert_same_run(run: Run, local: Run) -> None:
    """The same acquisitions absorbed, monitor arrays and published pixels, bit for bit."""
    assert run.states.keys() == local.states.keys()
    for tile_id, state in run.states.items():
        assert_same_state(state, local.states[tile_id])
    assert run.layers.keys() == local.layers.keys() and len(local.layers) >= 2
    for asset, pixels in local.layers.items():
        np.testing.assert_array_equal(run.layers[asset], pixels, err_msg=asset)


def asset_paths(archive: DemoArchive, keys: tuple[str, ...]) -> list[Path]:
    """The archive's COGs of the given asset keys (one per acquisition)."""
    return sorted(p for key in keys for p in (archive.root / "items").glob(f"*/*_{key}.tif"))


def listed_assets(archive: DemoArchive, keys: tuple[str, ...]) -> list[Path]:
    """The COGs of the acquisitions the source lists (cloud cover within the demo config's 95 %)."""
    listed = [
        path
        for item in sorted((archive.root / "items").glob("*/*.json"))
        if json.loads(item.read_text())["properties"].get("eo:cloud_cover", 0) <= 95
        for path in item.parent.glob("*.tif")
        if path.stem.rsplit("_", 1)[1] in keys
    ]
    return sorted(listed)


def covered_blocks(path: Path) -> int:
    """The blocks of a COG the 64 px tile covers: all of them (the tile is the whole area)."""
    with rasterio.open(path) as src:
        rows, cols = src.block_shapes[0]
        return math.ceil(src.height / rows) * math.ceil(src.width / cols)


def test_http_assets_give_the_local_states_and_publications(
    archive: DemoArchive, local: Run, http: Served, tmp_path: Path
) -> None:
    catalog = remote_catalog(archive.root, tmp_path / "catalog", http.url)
    run = fit_and_update(deployment(tmp_path, archive, catalog))
    assert_same_run(run, local)

    traffic = http.recorder.traffic
    read = [p for p in asset_paths(archive, READ) if traffic.paths[_url_path(archive, p)]]
    assert read == listed_assets(archive, READ)  # every acquisition the source lists, once
    # The least a reader fetches per asset: its header and the blocks the tile covers; over HTTP one HEAD for the
    # size. GDAL keeps the header and blocks of an asset read twice (fit, then update) in its cache.
    for path in read:
        assert traffic.paths[_url_path(archive, path)] <= 1 + 1 + covered_blocks(path), path
    assert traffic.statuses.keys() <= {200, 206}
    # Other assets (green, swir, the forest mask) are never fetched.
    assert sum(traffic.paths[_url_path(archive, p)] for p in read) == traffic.requests


def test_many_requests_are_in_flight_at_once_within_read_concurrency(
    archive: DemoArchive, http: Served, tmp_path: Path
) -> None:
    catalog = remote_catalog(archive.root, tmp_path / "catalog", http.url)
    result = deployment(tmp_path, archive, catalog, read_concurrency=6).run_fit()
    assert not result.failed
    # One tile: its load's I/O pool is the only reader, each task one request at a time.
    assert 2 < http.recorder.traffic.max_in_flight <= 6


@pytest.mark.parametrize("status", [503, 429])
def test_a_transient_error_from_object_storage_is_retried_and_the_run_succeeds(
    archive: DemoArchive, local: Run, http: Served, tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = remote_catalog(archive.root, tmp_path / "catalog", http.url)
    pipeline = deployment(tmp_path, archive, catalog)
    # The newest acquisition's NIR asset: read by the update.
    newest = asset_paths(archive, ("nir08",))[-1]
    http.recorder.fail_next(_url_path(archive, newest), status)
    with caplog.at_level(logging.WARNING):
        run = fit_and_update(pipeline)
    assert http.recorder.traffic.statuses[status] == 1
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 1 and str(status) in retried[0].getMessage()
    assert_same_run(run, local)


def test_s3_assets_give_the_local_states_and_publications(archive: DemoArchive, local: Run, tmp_path: Path) -> None:
    bucket = f"assets-{uuid.uuid4().hex[:8]}"  # new object URLs: GDAL's cache outlives a run in the process
    with moto_s3() as s3:
        assert upload_tree(archive.root, bucket) >= 6 * 30
        s3.recorder.reset()
        catalog = remote_catalog(archive.root, tmp_path / "catalog", f"s3://{bucket}")
        run = fit_and_update(deployment(tmp_path, archive, catalog))
        traffic = s3.recorder.traffic
    assert_same_run(run, local)
    read = {f"/{bucket}/{p.relative_to(archive.root).as_posix()}": p for p in listed_assets(archive, READ)}
    # Path-style GETs of /bucket/key; no HEAD (/vsis3/ learns the size from the first range), no listing.
    assert traffic.methods.keys() == {"GET"}
    for key, path in read.items():
        assert 1 <= traffic.paths[key] <= 1 + covered_blocks(path), key
    assert traffic.requests == sum(traffic.paths[key] for key in read)  # nothing else fetched


def _url_path(archive: DemoArchive, path: Path) -> str:
    """The URL path the HTTP server serves a file of the archive at."""
    return "/" + path.relative_to(archive.root).as_posix()
