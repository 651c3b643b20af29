"""Sources that fail clearly: a search that finds nothing says what it asked for; a bad item is skipped, not fatal."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pystac
import pytest
from test_faults import (  # noqa: F401 (fixtures)
    BAD_DAY,
    TILE_A,
    TILE_B,
    UNTIL,
    FaultProxy,
    _ProxyHandler,
    assert_same_state,
    clean,
    outcome,
    records,
    stac_proxy,
    states,
    static_pipeline,
    window_items,
    workspace,
)

from catalog.runs import RunLog, RunRecord
from scheduler.config import Config, SourceConfig
from scheduler.demo import DemoArchive
from scheduler.demo_setup import write_demo_config
from scheduler.errors import NothingFoundError
from scheduler.jobs import record_run
from scheduler.pipeline import Pipeline
from scheduler.sources import StaticCatalogSource, unreadable_in
from scheduler.state import load_state
from server.cli import main

from conftest import TEST_SPEC, TILE_SIZE, make_workspace


def item_file(pipeline: Pipeline, item_id: str) -> Path:
    """Where write_catalog put an item's JSON."""
    [path] = Path(pipeline.cfg.source.catalog).parent.rglob(f"{item_id}.json")
    return path


def bad_day_item(archive: DemoArchive) -> pystac.Item:
    return next(i for i in window_items(archive) if i.datetime.strftime("%Y-%m-%d") == BAD_DAY)


def with_bad_day(root: Path, cfg: Config, archive: DemoArchive) -> tuple[Pipeline, pystac.Item, Path]:
    """A deployment on a static catalog of the window's items; the item of BAD_DAY and its file, to break."""
    pipeline = static_pipeline(root, cfg, window_items(archive))
    bad = bad_day_item(archive)
    return pipeline, bad, item_file(pipeline, bad.id)


def run_and_record(pipeline: Pipeline) -> tuple[object, dict]:
    """An update up to UNTIL, recorded in the run history as the CLI and the scheduler do; the newest record."""
    started = dt.datetime.now(dt.UTC)
    result = pipeline.run_update(UNTIL)
    record_run(RunLog(pipeline.cfg.output.run_log), started, UNTIL, "partial" if result.failed else "ok", result)
    return result, json.loads(pipeline.cfg.output.run_log.read_text())["runs"][-1]


# -- (a) a search that finds nothing ---------------------------------------------------------------------------


def test_fit_that_finds_nothing_exits_3_naming_collection_bbox_period_and_cloud_limit(
    tmp_path: Path, demo_archive: DemoArchive, capsys: pytest.CaptureFixture, cli_logging: None
) -> None:
    (tmp_path / "archive").symlink_to(demo_archive.root, target_is_directory=True)
    config = write_demo_config(tmp_path, TEST_SPEC, tile_size=TILE_SIZE)
    text = config.read_text()
    config.write_text(re.sub(r'collection = ".*"', 'collection = "sentinel-2-c1-l2a"', text))
    code = main(["fit", "-c", str(config)])
    err = capsys.readouterr().err
    assert code == NothingFoundError.exit_code == 3
    [line] = [line for line in err.splitlines() if line.startswith("nrt-alerts: error: ")]
    assert "Traceback" not in err
    assert line.startswith("nrt-alerts: error: 2 tile(s): no acquisitions in collection 'sentinel-2-c1-l2a'")
    assert f"of static catalog {demo_archive.catalog_path.resolve()} over bbox [" in line
    assert re.search(r"over bbox \[-?\d+\.\d{5}, -?\d+\.\d{5}, -?\d+\.\d{5}, -?\d+\.\d{5}\] \(lon/lat\)", line), line
    assert "from 2021-01-01 to 2022-12-31 with eo:cloud_cover <= 95" in line, line  # the demo config's limit
    assert not (tmp_path / "output" / "state").exists() or not list((tmp_path / "output" / "state").glob("*.nc"))


@pytest.mark.slow  # the `fitted` fixture fits both demo tiles
def test_a_tile_outside_the_imagery_fails_naming_what_its_search_asked_for(
    fitted: Config,
    demo_archive: DemoArchive,
    tmp_path: Path,
) -> None:
    items = window_items(demo_archive)
    west, south, east, north = items[0].bbox
    middle = west + (east - west) * 0.6  # tile A is the western half: no item covers it in this catalog
    for item in items:
        item.geometry = {
            "type": "Polygon",
            "coordinates": [[[middle, south], [east, south], [east, north], [middle, north], [middle, south]]],
        }
        item.bbox = [middle, south, east, north]
    history = fitted.history.model_copy(update={"start": dt.date(2023, 1, 1), "end": dt.date(2023, 2, 28)})
    pipeline = static_pipeline(tmp_path, fitted.model_copy(update={"history": history}), items)
    tile_a = pipeline.tiles[0]
    with pytest.raises(NothingFoundError) as info:
        pipeline.fit_tile(tile_a)
    corners = ", ".join(f"{v:.5f}" for v in tile_a.bounds_4326)
    assert str(info.value) == (
        f"tile {TILE_A}: no acquisitions in collection '{fitted.source.collection}' of static catalog "
        f"{pipeline.cfg.source.catalog} over bbox [{corners}] (lon/lat) from 2023-01-01 to 2023-02-28 "
        "with eo:cloud_cover <= 95"
    )
    assert len(pipeline.source.search(pipeline.tiles[1].bounds_4326, *_window())) == 12  # tile B's search finds them


def _window() -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(2023, 1, 1, tzinfo=dt.UTC), UNTIL


# -- (b) one bad item in a static catalog ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_cut_off_item_stops_each_tile_at_its_day_names_its_file_and_is_read_again_when_fixed(
    fitted: Config,
    clean: dict,  # noqa: F811
    demo_archive: DemoArchive,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline, bad, path = with_bad_day(tmp_path, fitted, demo_archive)
    good = path.read_text()
    path.write_text(good[: good.index('"links"')])  # cut off after its properties: the date is still there
    key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")

    with caplog.at_level(logging.WARNING):
        result, record = run_and_record(pipeline)

    for tile_id in (TILE_A, TILE_B):  # the four acquisitions before it are absorbed, nothing after it
        tile = outcome(result, tile_id)
        assert tile.absorbed == clean[tile_id].absorbed[:4]
        prefix = f"tile {tile_id}: acquisition {key} (static catalog item {path}) cannot be read: not JSON: "
        assert tile.error.startswith(prefix), tile.error
    warned = [r for r in records(caplog, logging.WARNING) if str(path) in r.getMessage()]
    assert warned and "skipped (read again at the next search)" in warned[0].getMessage()
    assert record["outcome"] == "partial" and record["failed_tiles"] == [TILE_A, TILE_B]
    assert [entry.split(": ", 1)[0] for entry in record["unreadable_items"]] == [f"static catalog item {path}"]
    assert load_state(pipeline.tile_state_path(pipeline.tiles[0])).absorbed == clean[TILE_A].absorbed[:4]

    second, _ = run_and_record(pipeline)  # still broken: nothing moves, the same reason
    assert [outcome(second, t).absorbed for t in (TILE_A, TILE_B)] == [[], []] and len(second.failed) == 2

    path.write_text(good)  # the provider fixes the file; catalog.json is unchanged
    third, record = run_and_record(pipeline)
    assert not third.failed and record["unreadable_items"] == [] and record["outcome"] == "ok"
    for tile_id, state in states(pipeline).items():
        assert_same_state(state, clean[tile_id])


@pytest.mark.slow
def test_an_item_without_datetime_is_skipped_with_a_warning_and_the_others_are_absorbed(
    fitted: Config,
    clean: dict,  # noqa: F811
    demo_archive: DemoArchive,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline, bad, path = with_bad_day(tmp_path, fitted, demo_archive)
    data = json.loads(path.read_text())
    del data["properties"]["datetime"]
    path.write_text(json.dumps(data))

    with caplog.at_level(logging.WARNING):
        result, record = run_and_record(pipeline)

    expected = f"static catalog item {path}: Invalid Item: If datetime is None, a start_datetime and end_datetime "
    assert not result.failed  # its date is unknown: it cannot hold anything back
    for tile_id in (TILE_A, TILE_B):
        key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")
        assert outcome(result, tile_id).absorbed == [k for k in clean[tile_id].absorbed if k != key]
        assert outcome(result, tile_id).unreadable[0].startswith(expected)
    assert record["outcome"] == "ok" and len(record["unreadable_items"]) == 1
    assert record["unreadable_items"][0].startswith(expected)
    assert any(str(path) in r.getMessage() for r in records(caplog, logging.WARNING))


@pytest.mark.slow
def test_skip_acquisition_releases_a_tile_held_by_a_bad_item(
    fitted: Config,
    clean: dict,  # noqa: F811
    demo_archive: DemoArchive,
    tmp_path: Path,
) -> None:
    pipeline, bad, path = with_bad_day(tmp_path, fitted, demo_archive)
    text = path.read_text()
    path.write_text(text[: text.index('"links"')])  # its id and datetime are still in the text
    skipping = Pipeline(
        pipeline.cfg.model_copy(
            update={"source": pipeline.cfg.source.model_copy(update={"skip_acquisitions": [bad.id]})}
        )
    )
    result = skipping.run_update(UNTIL)
    key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")
    assert not result.failed
    for tile_id in (TILE_A, TILE_B):
        assert outcome(result, tile_id).absorbed == [k for k in clean[tile_id].absorbed if k != key]
        assert outcome(result, tile_id).unreadable == []


def test_an_unreadable_catalog_node_names_its_file(tmp_path: Path, demo_archive: DemoArchive) -> None:
    folder = tmp_path / "catalog"
    shutil.copytree(demo_archive.catalog_path.parent, folder, ignore=shutil.ignore_patterns("*.tif"))
    [collection] = [p for p in folder.rglob("collection.json")]
    collection.write_text(collection.read_text()[:100])
    source = StaticCatalogSource(SourceConfig(kind="static", catalog=folder / "catalog.json", collection="x"))
    with pytest.raises(Exception, match=re.escape(f"static catalog {collection} is unreadable: ")) as info:
        source.search((-180, -90, 180, 90), dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1))
    assert info.value.exit_code == 3


def test_a_static_search_reports_unreadable_items_beside_the_items(tmp_path: Path, demo_archive: DemoArchive) -> None:
    folder = tmp_path / "catalog"
    shutil.copytree(demo_archive.catalog_path.parent, folder, ignore=shutil.ignore_patterns("*.tif"))
    items = sorted(folder.rglob("S2X_*.json"))
    broken = items[3]
    broken.write_text("{")
    collection = json.loads(next(folder.rglob("collection.json")).read_text())["id"]
    source = StaticCatalogSource(
        SourceConfig(kind="static", catalog=folder / "catalog.json", collection=collection, max_cloud_cover=100)
    )
    found = source.search((-180, -90, 180, 90), dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1))
    assert len(found) == len(items) - 1
    [bad] = unreadable_in(found)
    assert bad.where == f"static catalog item {broken}" and bad.when is None and bad.item_id is None
    assert bad.reason == "not JSON: unexpected end of data: line 1 column 2 (char 1)"


# -- (b) one invalid item on a STAC API page ------------------------------------------------------------------


class _EditingHandler(_ProxyHandler):
    """Forwards to the STAC API; the features of its answers pass through the proxy's `edit` on the way back."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        if status == 200 and self.server.edit is not None:
            answer = json.loads(body)
            for feature in answer.get("features", []):
                self.server.edit(feature)
            body = json.dumps(answer).encode()
        super()._send(status, body, content_type)


@pytest.fixture
def editing_proxy(stac_proxy: FaultProxy) -> Iterator[FaultProxy]:  # noqa: F811
    """test_faults' proxy in front of the demo archive in stac-fastapi-pgstac, its answers passed through `edit`."""
    stac_proxy.RequestHandlerClass, stac_proxy.edit = _EditingHandler, None
    try:
        yield stac_proxy
    finally:
        stac_proxy.RequestHandlerClass, stac_proxy.edit = _ProxyHandler, None


def _spoil(item_id: str, how: str) -> Callable[[dict], None]:
    def edit(feature: dict) -> None:
        if feature.get("id") != item_id:
            return
        if how == "no datetime":
            del feature["properties"]["datetime"]
        else:
            feature["assets"] = ["not", "an", "object"]

    return edit


@pytest.mark.pgstac
@pytest.mark.slow
@pytest.mark.parametrize("how", ["no datetime", "assets not an object"])
def test_an_invalid_item_on_a_stac_api_page_is_skipped_and_the_rest_of_the_page_used(
    how: str,
    fitted: Config,
    clean: dict,  # noqa: F811
    demo_archive: DemoArchive,
    editing_proxy: FaultProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = bad_day_item(demo_archive)
    key = bad.datetime.strftime("%Y-%m-%dT%H:%M:%S")
    pipeline = workspace(tmp_path, fitted, kind="stac-api", url=editing_proxy.url, catalog=None, retries=0)
    editing_proxy.edit = _spoil(bad.id, how)
    with caplog.at_level(logging.WARNING):
        result, record = run_and_record(pipeline)
    editing_proxy.edit = None
    where = f"item {bad.id} of the STAC API search at {editing_proxy.url}"
    warned = [r for r in records(caplog, logging.WARNING) if where in r.getMessage()]
    assert len(warned) == 2 and "is not a valid STAC item, skipped" in warned[0].getMessage()  # one per tile
    assert [entry.split(": ", 1)[0] for entry in record["unreadable_items"]] == [where]
    for tile_id in (TILE_A, TILE_B):
        tile = outcome(result, tile_id)
        if how == "no datetime":  # undated: it cannot be placed, the other eleven are absorbed
            assert tile.ok and tile.absorbed == [k for k in clean[tile_id].absorbed if k != key]
        else:  # dated: the tile stops before its day, and the next run reads it again
            assert tile.absorbed == clean[tile_id].absorbed[:4]
            assert tile.error.startswith(f"tile {tile_id}: acquisition {key} ({where}) cannot be read: ")
    if how != "no datetime":
        again, record = run_and_record(pipeline)  # the API serves it intact now
        assert not again.failed and record["unreadable_items"] == []
        for tile_id, state in states(pipeline).items():
            assert_same_state(state, clean[tile_id])


def test_status_shows_a_runs_unreadable_items(
    tmp_path: Path,
    demo_archive: DemoArchive,
    capsys: pytest.CaptureFixture,
    cli_logging: None,
) -> None:
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    bad = "static catalog item /data/S2X_1.json: not JSON: unexpected end of data: line 34 column 7 (char 1093)"
    stamp = "2024-03-15T10:00:00+00:00"
    RunLog(cfg.output.run_log).append(
        RunRecord(started=stamp, finished=stamp, until=stamp, outcome="ok", tiles=2, unreadable_items=[bad, "x: y"])
    )
    assert main(["status", "-c", str(tmp_path / "ws" / "nrt-alerts.toml")]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.split()[:2] == [stamp, "ok"] and line.endswith(f" 2 unreadable item(s): {bad}")
