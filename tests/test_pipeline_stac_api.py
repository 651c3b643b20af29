"""The same pipeline against a real STAC API (stac-fastapi-pgstac): its results equal the static-catalog run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio

from catalog.store import CatalogLayout, read_index
from scheduler.demo import DemoArchive
from scheduler.state import load_state

from conftest import DemoRun, make_workspace, run_demo
from stac_api import require_postgres, running_stac_api

pytestmark = pytest.mark.pgstac


@pytest.fixture(scope="module")
def demo_stac_api(demo_archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo archive loaded into pgstac and served by stac-fastapi-pgstac on loopback."""
    require_postgres()
    with running_stac_api(demo_archive.catalog_path, tmp_path_factory.mktemp("pgstac")) as url:
        yield url


@pytest.fixture(scope="module")
def api_run(demo_stac_api: str, demo_archive: DemoArchive, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo pipeline with source.kind = stac-api."""
    cfg = make_workspace(tmp_path_factory.mktemp("api-run"), demo_archive)
    source = cfg.source.model_copy(update={"kind": "stac-api", "url": demo_stac_api, "catalog": None})
    return run_demo(cfg.model_copy(update={"source": source}))


def _layers(stac_dir: Path, mosaic: str) -> np.ndarray:
    with rasterio.open(CatalogLayout(stac_dir).collection_dir / mosaic) as src:
        return src.read(1)


def test_api_search_finds_the_same_acquisitions(api_run: DemoRun, static_run: DemoRun) -> None:
    for tile in static_run.pipeline.tiles:
        static_state = load_state(static_run.pipeline.tile_state_path(tile))
        api_state = load_state(api_run.pipeline.tile_state_path(tile))
        assert api_state.history_acquisitions == static_state.history_acquisitions > 100
        assert api_state.absorbed == static_state.absorbed
        assert len(api_state.absorbed) > 50


def test_api_run_publishes_identical_alerts(api_run: DemoRun, static_run: DemoRun) -> None:
    static_index = read_index(CatalogLayout(static_run.cfg.output.stac_dir))
    api_index = read_index(CatalogLayout(api_run.cfg.output.stac_dir))
    assert [p.id for p in api_index.publications] == [p.id for p in static_index.publications]
    for static_pub, api_pub in zip(static_index.publications, api_index.publications, strict=True):
        assert api_pub.datetime == static_pub.datetime
        for asset, mosaic in static_pub.mosaics.items():
            expected = _layers(static_run.cfg.output.stac_dir, mosaic)
            actual = _layers(api_run.cfg.output.stac_dir, api_pub.mosaics[asset])
            np.testing.assert_array_equal(actual, expected, err_msg=f"{asset} of {static_pub.id} differs")
    latest = _layers(api_run.cfg.output.stac_dir, api_index.latest.mosaics["status"])
    assert np.isin(latest, [3, 6]).sum() > 200  # the comparison is not between two empty maps
