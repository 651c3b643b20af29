"""A publication follows the states' content: refits with other settings, report-only settings, earlier refits."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pytest
import rasterio

from catalog.encoding import Status
from catalog.publish import item_data_time
from catalog.store import CatalogLayout, read_index
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline

from conftest import make_workspace

pytestmark = pytest.mark.slow

UNTIL = dt.datetime(2023, 9, 30, 23, 59, tzinfo=dt.UTC)
EARLIER = dt.datetime(2023, 6, 30, 23, 59, tzinfo=dt.UTC)
HIGH = (Status.FIRST_HIGH, Status.PROVISIONAL_HIGH, Status.CONFIRMED_HIGH)


def _with_monitor(cfg: Config, **changes: object) -> Config:
    return cfg.model_copy(update={"monitor": cfg.monitor.model_copy(update=changes)})


def _latest_status(cfg: Config) -> np.ndarray:
    layout = CatalogLayout(cfg.output.stac_dir)
    with rasterio.open(layout.collection_dir / read_index(layout).latest.mosaics["status"]) as src:
        return src.read(1)


def _item(cfg: Config, item_id: str) -> dict:
    return json.loads(CatalogLayout(cfg.output.stac_dir).item_path(item_id).read_text())


def test_publications_follow_the_states_content(
    tmp_path, demo_archive: DemoArchive, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_workspace(tmp_path / "deploy", demo_archive)
    first = Pipeline(cfg).run_fit(until=UNTIL)
    assert first.publication is not None
    assert Pipeline(cfg).run_update(UNTIL).publication is None, "nothing changed: nothing to publish"
    before = _latest_status(cfg)
    assert np.isin(before, HIGH).sum() > 0

    # A report-only setting: the states stay valid, the served alerts must change at once.
    report_only = _with_monitor(cfg, high_confidence=1e6)
    again = Pipeline(report_only).run_update(UNTIL)
    assert again.publication is not None, "a changed high_confidence was never published"
    after = _latest_status(report_only)
    assert np.isin(after, HIGH).sum() == 0
    assert (after == Status.CONFIRMED_LOW).sum() == np.isin(before, (Status.CONFIRMED_LOW, Status.CONFIRMED_HIGH)).sum()
    tile = next(iter(again.publication.items))
    pair = (first.publication.items[tile], again.publication.items[tile])
    settings = {_item(cfg, item_id)["properties"]["nrt:settings"] for item_id in pair}
    assert len(settings) == 2

    # A refit with another sensitivity up to the same date: same data time, other alerts.
    refit_cfg = _with_monitor(report_only, sensitivity=cfg.monitor.sensitivity * 3)
    refit = Pipeline(refit_cfg).run_fit(until=UNTIL)
    assert refit.publication is not None, "a refit with changed settings said 'published: nothing new'"
    assert set(refit.publication.items) == set(again.publication.items)
    # Wider fences: fewer pixels with a first or provisional anomaly in the served layer.
    early = (Status.FIRST_LOW, Status.PROVISIONAL_LOW, Status.FIRST_HIGH, Status.PROVISIONAL_HIGH)
    assert np.isin(_latest_status(refit_cfg), early).sum() < np.isin(after, early).sum()
    assert Pipeline(refit_cfg).run_update(UNTIL).publication is None

    # One tile refitted up to an earlier date: the catalog must not stay ahead of its state, and it says so.
    pipeline = Pipeline(refit_cfg)
    tile = pipeline.tiles[0]
    with caplog.at_level(logging.WARNING, logger="scheduler.pipeline"):
        earlier = pipeline.run_fit([tile], until=EARLIER)
    assert earlier.publication is not None
    item_id = earlier.publication.items[tile.id]
    assert item_data_time(tile.id, item_id) <= EARLIER
    assert any("older than its published item" in r.getMessage() and tile.id in r.getMessage() for r in caplog.records)
    # The other tile's item is the one published before, untouched.
    other = pipeline.tiles[1]
    assert earlier.publication.items[other.id] == refit.publication.items[other.id]
