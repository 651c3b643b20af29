"""The odc-stac boundary: failed assets are named from odc's loader log by default, and not at all when switched off."""

from __future__ import annotations

import logging

import pytest

from scheduler.odc_boundary import ASSET_NAMES_ENV, failed_assets


class _Kept(logging.Handler):
    """Keeps the records that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def odc_log() -> _Kept:
    """A handler on odc's reader logger, removed afterwards."""
    logger = logging.getLogger("odc.loader._rio")
    kept = _Kept()
    logger.addHandler(kept)
    yield kept
    logger.removeHandler(kept)


def test_a_failed_asset_is_named_and_its_log_line_taken(odc_log: _Kept, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ASSET_NAMES_ENV, raising=False)
    logger = logging.getLogger("odc.loader._rio")
    with failed_assets("nrt-load-test") as failed:
        logger.error("Failed to load %s", "/data/B04.tif")
        logger.error("something else")
    assert failed.assets == ["/data/B04.tif"]
    assert [r.getMessage() for r in odc_log.records] == ["something else"]
    logger.error("Failed to load %s", "/data/B08.tif")  # after the load: not ours any more
    assert failed.assets == ["/data/B04.tif"] and odc_log.records[-1].getMessage() == "Failed to load /data/B08.tif"


def test_switched_off_the_log_is_left_alone(odc_log: _Kept, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ASSET_NAMES_ENV, "0")
    with failed_assets("nrt-load-test") as failed:
        logging.getLogger("odc.loader._rio").error("Failed to load %s", "/data/B04.tif")
    assert failed.assets == []
    assert [r.getMessage() for r in odc_log.records] == ["Failed to load /data/B04.tif"]
