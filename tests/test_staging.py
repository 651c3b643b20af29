"""Each tile's item is written as soon as its work is done; the run's one publication names the items written."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from catalog.locking import LockTimeout, file_lock
from catalog.publish import Publisher
from catalog.store import CatalogLayout, read_index
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline

from conftest import clone_workspace, make_workspace

FIRST_UPDATE = dt.datetime(2023, 5, 31, 23, 59, tzinfo=dt.UTC)
UNTIL = dt.datetime(2023, 6, 15, 23, 59, tzinfo=dt.UTC)
LATER = dt.datetime(2023, 7, 15, 23, 59, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive, fitted: Config) -> Config:
    """A deployment fitted (conftest's, copied) and updated to 2023-05-31, published."""
    cfg = clone_workspace(tmp_path_factory.mktemp("staging") / "pristine", fitted, demo_archive)
    pipeline = Pipeline(cfg)
    pipeline.run_update(FIRST_UPDATE)
    return cfg


def _clone(pristine: Config, root: Path, demo_archive: DemoArchive, side_by_side: int = 2) -> Pipeline:
    cfg = make_workspace(root, demo_archive)
    shutil.copytree(pristine.output.dir, cfg.output.dir, symlinks=True)
    compute = cfg.compute.model_copy(update={"threads": side_by_side, "tiles_at_once": side_by_side})
    return Pipeline(cfg.model_copy(update={"compute": compute}))


def _item_folders(cfg: Config) -> set[str]:
    return {p.name for p in CatalogLayout(cfg.output.stac_dir).collection_dir.glob("items/*") if p.is_dir()}


def test_a_finished_tiles_item_is_written_while_another_tile_still_runs(
    pristine: Config, tmp_path: Path, demo_archive: DemoArchive
) -> None:
    pipeline = _clone(pristine, tmp_path / "clone", demo_archive)
    first, second = pipeline.tiles
    before = _item_folders(pipeline.cfg)
    seen: dict[str, dict] = {}
    update = Pipeline.guarded_update

    def held_back(self: Pipeline, tile, until, progress=None):  # noqa: ANN001, ANN202
        if tile.id == second.id:
            # The second tile waits for the first one's new item: it must appear while this tile is still running.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not seen:
                for name in _item_folders(self.cfg) - before:
                    path = CatalogLayout(self.cfg.output.stac_dir).item_path(name)
                    if name.startswith(first.id) and path.is_file():
                        seen[name] = json.loads(path.read_text())
                time.sleep(0.05)
        return update(self, tile, until, progress)

    pipeline_type = type(pipeline)
    try:
        pipeline_type.guarded_update = held_back  # type: ignore[method-assign]
        result = pipeline.run_update(UNTIL)
    finally:
        pipeline_type.guarded_update = update  # type: ignore[method-assign]
    assert result.publication is not None and not result.failed
    assert len(seen) == 1, "the first tile's item was not on disk while the second tile ran"
    ((name, written),) = seen.items()
    assert result.publication.items[first.id] == name
    assert (
        result.publication.items[second.id]
        != read_index(CatalogLayout(pristine.output.stac_dir)).latest.items[second.id]
    )
    # The publication named the item as it was written during the run: not rewritten at the end.
    now = json.loads(CatalogLayout(pipeline.cfg.output.stac_dir).item_path(name).read_text())
    assert now == written
    assert dt.datetime.fromisoformat(written["properties"]["created"]) <= result.publication.published


def test_a_staged_item_is_published_only_while_it_shows_the_tiles_state(
    pristine: Config, tmp_path: Path, demo_archive: DemoArchive
) -> None:
    pipeline = _clone(pristine, tmp_path / "clone", demo_archive)
    moved, kept = pipeline.tiles
    for tile in pipeline.tiles:
        assert pipeline.update_tile(tile, UNTIL).absorbed
    staged = {tile.id: pipeline.stage(tile) for tile in pipeline.tiles}
    assert all(staged.values())
    assert pipeline.update_tile(moved, LATER).absorbed  # its state moves on before the publication
    publication = pipeline.publish(pipeline.tiles, staged)
    assert publication is not None
    assert publication.items[kept.id] == staged[kept.id].item["id"]
    layout = CatalogLayout(pipeline.cfg.output.stac_dir)
    assert json.loads(layout.item_path(staged[kept.id].item["id"]).read_text()) == staged[kept.id].item
    # The moved tile's report was made again from its newer state: its item says the newer data time.
    item = json.loads(layout.item_path(publication.items[moved.id]).read_text())
    assert publication.items[moved.id] != staged[moved.id].item["id"]
    assert dt.datetime.fromisoformat(item["properties"]["datetime"]) > staged[moved.id].datetime
    assert pipeline.unpublished(pipeline.tiles) == []


def test_an_item_that_cannot_be_written_ahead_is_written_by_the_publication(
    pristine: Config, tmp_path: Path, demo_archive: DemoArchive, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    pipeline = _clone(pristine, tmp_path / "clone", demo_archive)

    def full(self: Publisher, report, *, now=None):  # noqa: ANN001, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Publisher, "stage_locked", full)
    result = pipeline.run_update(UNTIL)
    assert result.publication is not None and set(result.publication.items) == {t.id for t in pipeline.tiles}
    assert pipeline.unpublished(pipeline.tiles) == []
    warned = [r.getMessage() for r in caplog.records if "not written ahead" in r.getMessage()]
    assert len(warned) == 2 and all("No space left on device" in m for m in warned)


def test_stagers_share_the_publication_lock_and_a_publication_waits_for_them(tmp_path: Path) -> None:
    lock = tmp_path / ".publish.lock"
    inside = threading.Barrier(2, timeout=10)

    def stager() -> None:
        with file_lock(lock, shared=True, timeout=5):
            inside.wait()  # both stagers hold it at once

    threads = [threading.Thread(target=stager) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    assert not inside.broken
    with file_lock(lock, shared=True), pytest.raises(LockTimeout):
        with file_lock(lock, timeout=0.3):  # a publication: exclusive
            pass
    with file_lock(lock, timeout=0.3):
        pass  # free again once the stager is done


def test_two_processes_staging_one_tile_never_clear_each_others_temp_files(
    pristine: Config, tmp_path: Path, demo_archive: DemoArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two runs on one deployment (here two pipelines, each with its own lock-file handles, as two processes have)
    # finish the same tile at once. The first one's stager is held inside a COG write, its temp file on disk.
    import catalog.cog

    first_run = _clone(pristine, tmp_path / "clone", demo_archive, side_by_side=1)
    second_run = Pipeline(first_run.cfg)
    tile = first_run.tiles[0]
    first_run.update_tile(tile, UNTIL)  # the tile's state is now ahead of its published item
    writing, release = threading.Event(), threading.Event()
    held: dict[str, bool] = {}
    real_translate = catalog.cog.cog_translate

    def held_translate(src, dst, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if threading.current_thread().name == "first-stager" and not writing.is_set():
            held["existed"] = Path(dst).exists()
            writing.set()
            release.wait(60)
            held["survived"] = Path(dst).exists()
        return real_translate(src, dst, *args, **kwargs)

    monkeypatch.setattr(catalog.cog, "cog_translate", held_translate)
    results: dict[str, object] = {}
    first = threading.Thread(target=lambda: results.update(first=first_run.stage(tile)), name="first-stager")
    first.start()
    assert writing.wait(120), "the first stager never reached a COG write"
    second = threading.Thread(target=lambda: results.update(second=second_run.stage(tile)))
    second.start()
    second.join(3)  # holding the tile lock, it waits for the first stager; without it, it clears the temp files
    release.set()
    first.join(120)
    second.join(120)
    assert held == {"existed": True, "survived": True}, "the other stager deleted a live temp file"
    assert results["first"] is not None, "the first stager's item was not written"
    # The second stager, let in after the first, may write the still unpublished item again: the last one holds.
    final = results["second"] or results["first"]
    assert first_run.publisher.staged_intact(final)  # type: ignore[arg-type]
    folder = CatalogLayout(first_run.cfg.output.stac_dir).item_path(final.item["id"]).parent  # type: ignore[union-attr]
    assert all((folder / asset["href"]).is_file() for asset in final.item["assets"].values())  # type: ignore[union-attr]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temp files left behind"
