"""State generations and checksums: damage is detected and named, `nrt-alerts restore` brings a good state back."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from catalog.store import CatalogLayout, read_index
from scheduler.backups import aside_dir, generation_paths, generations_dir
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.errors import NotFittedError, StateError
from scheduler.pipeline import Pipeline
from scheduler.state import check_file, generations, load_state, save_state
from server.cli import main

from conftest import DemoRun, clone_workspace, latest_layers

UNTIL = "2023-06-15"


def _config_path(cfg: Config) -> str:
    return str(cfg.output.dir.parent / "nrt-alerts.toml")


def _same_state(got, want) -> None:
    assert got.absorbed == want.absorbed and len(set(got.absorbed)) == len(got.absorbed)
    for key, value in vars(want.monitor.monitor).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(vars(got.monitor.monitor)[key], value, err_msg=key)
    for key, value in want.monitor.extras.items():
        np.testing.assert_array_equal(got.monitor.extras[key], value, err_msg=key)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_archive: DemoArchive, fitted: Config) -> Config:
    """A deployment fitted (conftest's, copied) and updated to 2023-05-31 (generation 1 of each tile is its fit)."""
    cfg = clone_workspace(tmp_path_factory.mktemp("backups") / "pristine", fitted, demo_archive)
    pipeline = Pipeline(cfg)
    pipeline.run_update(dt.datetime(2023, 5, 31, 23, 59, tzinfo=dt.UTC))
    return cfg


def _clone(pristine: Config, root: Path, demo_archive: DemoArchive) -> Config:
    return clone_workspace(root, pristine, demo_archive)


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nrt-alerts: error:")]
    assert len(err) == 1, err
    return err[0]


def test_truncated_file_is_detected_and_the_good_generation_offered(static_run: DemoRun, tmp_path) -> None:
    path = tmp_path / "r000c000.nc"
    state = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[0]))
    save_state(state, path, generations=3)
    state.absorbed.append("2099-01-01T00:00:00")  # any change: a second save keeps the first as generation 1
    save_state(state, path, generations=3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError) as raised:
        load_state(path)
    message = str(raised.value)
    assert message.startswith("tile r000c000: state ") and "is unreadable" in message
    last = state.absorbed[-2]
    assert f"the newest good generation is 1 (last acquisition {last})" in message
    assert message.endswith("run `nrt-alerts restore --tile r000c000 --generation 1`")
    # Cut at any point: never loads.
    for cut in (100, len(data) // 4, len(data) - 1000, len(data) - 1):
        path.write_bytes(data[:cut])
        assert not check_file(path).ok, cut


def test_flipped_bytes_are_detected(static_run: DemoRun, tmp_path) -> None:
    path = tmp_path / "r000c001.nc"
    original = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[1]))
    save_state(original, path)
    data = path.read_bytes()
    # One bit of the list of absorbed acquisitions: HDF5's own header checksum or ours catches it.
    at = data.index(original.absorbed[5].encode())
    flipped = bytearray(data)
    flipped[at + 3] ^= 0x01  # 2023 -> 2022: a valid date, a valid JSON, a different history
    path.write_bytes(bytes(flipped))
    with pytest.raises(StateError, match="is unreadable|checksum mismatch"):
        load_state(path)
    # Changes HDF5 cannot see (its structures stay consistent): only the content checksum catches them.
    for variable, attribute in (("q25", None), ("extra_run_count", None), (None, "nrt_alerts")):
        path = tmp_path / f"edited-{variable or attribute}.nc"  # a new file: HDF5 remembers the damaged one
        path.write_bytes(data)
        with netCDF4.Dataset(path, "a") as nc:
            if variable:
                nc[variable][3, 4] = nc[variable][3, 4] + 1
            else:
                meta = json.loads(nc.getncattr(attribute))
                meta["absorbed"][5] = "2022-06-10T10:12:00"
                nc.setncattr(attribute, json.dumps(meta))
        with pytest.raises(StateError, match="checksum mismatch"):
            load_state(path)
    # One bit anywhere: either detected, or in bytes that carry no content (the state loads unchanged).
    detected = 0
    offsets = np.linspace(0, len(data) - 1, 60).astype(int)
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        path = tmp_path / f"flipped-{offset}.nc"
        path.write_bytes(bytes(flipped))
        try:
            again = load_state(path)
        except StateError:
            detected += 1
            continue
        _same_state(again, original)
    assert detected >= len(offsets) * 0.8, f"only {detected} of {len(offsets)} flips detected"


def test_missing_file_offers_a_generation_and_without_any_asks_for_a_fit(static_run: DemoRun, tmp_path) -> None:
    path = tmp_path / "r000c000.nc"
    with pytest.raises(NotFittedError, match="nrt-alerts fit"):
        load_state(path)
    state = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[0]))
    save_state(state, path, generations=2)
    save_state(state, path, generations=2)
    path.unlink()
    with pytest.raises(StateError) as raised:
        load_state(path)
    assert not isinstance(raised.value, NotFittedError)
    assert "is missing" in str(raised.value) and "--generation 1`" in str(raised.value)


def test_retention_keeps_the_newest_n_generations(static_run: DemoRun, tmp_path) -> None:
    path = tmp_path / "r000c000.nc"
    state = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[0]))
    base = list(state.absorbed)
    for i in range(6):
        state.absorbed = base[: 10 + i]
        save_state(state, path, generations=3)
    kept = generations(path)
    # Generation 0 is the last save; 1..3 the three before it, newest first; older ones are gone.
    assert [len(g.meta["absorbed"]) for g in kept] == [15, 14, 13, 12]
    assert all(g.ok for g in kept) and len(list(generations_dir(path).iterdir())) == 3
    # 0 keeps none and leaves existing ones alone.
    save_state(state, tmp_path / "other.nc", generations=0)
    save_state(state, tmp_path / "other.nc", generations=0)
    assert generation_paths(tmp_path / "other.nc") == []
    # A generation is the replaced file itself: same bytes (a hard link where the filesystem has them).
    newest = generation_paths(path)[0]
    assert newest.stat().st_nlink in (1, 2) and check_file(newest).meta["absorbed"] == base[:14]


def test_restore_then_update_equals_an_uninterrupted_run(
    pristine: Config, tmp_path, demo_archive: DemoArchive, capsys
) -> None:
    reference = _clone(pristine, tmp_path / "reference", demo_archive)
    assert main(["--log-level", "warning", "update", "-c", _config_path(reference), "--until", UNTIL]) == 0
    cfg = _clone(pristine, tmp_path / "damaged", demo_archive)
    pipeline = Pipeline(cfg)
    tile = pipeline.tiles[0]
    path = pipeline.tile_state_path(tile)
    bad = bytearray(path.read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    capsys.readouterr()

    # The update fails for the damaged tile only (exit 1), naming the fix; the other tile goes on and publishes.
    assert main(["--log-level", "warning", "update", "-c", _config_path(cfg), "--until", UNTIL]) == 1
    runs = json.loads(cfg.output.run_log.read_text())["runs"]
    assert runs[-1]["outcome"] == "partial" and runs[-1]["failed_tiles"] == [tile.id]
    assert f"`nrt-alerts restore --tile {tile.id} --generation 1`" in runs[-1]["error"]

    assert main(["restore", "-c", _config_path(cfg), "--tile", tile.id, "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[:2] == ["0", "BAD"] and listing[2].split()[:3] == ["1", "ok", "2022-12-27T10:12:00"]

    assert main(["--log-level", "warning", "restore", "-c", _config_path(cfg), "--tile", tile.id]) == 0
    # The damaged file is kept aside, byte for byte; the restored one is the fit.
    [aside] = aside_dir(path).iterdir()
    assert aside.read_bytes() == bytes(bad)
    assert load_state(path).absorbed == []

    # The next update re-absorbs everything after the fit, once, and publishing catches up.
    assert main(["--log-level", "warning", "update", "-c", _config_path(cfg), "--until", UNTIL]) == 0
    want_pipeline = Pipeline(reference)
    for t in pipeline.tiles:
        _same_state(load_state(pipeline.tile_state_path(t)), load_state(want_pipeline.tile_state_path(t)))
    got = latest_layers(DemoRun(cfg, pipeline, None, []))
    want = latest_layers(DemoRun(reference, want_pipeline, None, []))
    for asset, array in want.items():
        np.testing.assert_array_equal(got[asset], array, err_msg=asset)
    latest = read_index(CatalogLayout(cfg.output.stac_dir)).latest
    assert latest.items == read_index(CatalogLayout(reference.output.stac_dir)).latest.items


def test_restore_cli_errors_are_one_line_with_exit_codes(pristine: Config, capsys) -> None:
    config = _config_path(pristine)
    assert main(["restore", "-c", config, "--tile", "r009c009"]) == 2
    assert "unknown tile id(s): r009c009" in _error_line(capsys)
    assert main(["restore", "-c", config, "--tile", "r000c000", "--generation", "7"]) == 4
    assert "--generation must be 1..1 (see --list)" in _error_line(capsys)


def test_restore_cli_in_a_real_process(pristine: Config, tmp_path, demo_archive: DemoArchive) -> None:
    cfg = _clone(pristine, tmp_path / "ws", demo_archive)
    [generation] = generation_paths(Pipeline(cfg).tile_state_path(Pipeline(cfg).tiles[1]))
    generation.write_bytes(generation.read_bytes()[:1000])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "restore", "-c", _config_path(cfg), "--tile", "r000c001"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        "nrt-alerts: error: tile r000c001: no kept generation verifies: run `nrt-alerts fit --tile r000c001`"
    ]


def test_a_state_damaged_before_publishing_holds_back_only_its_tile(
    pristine: Config, tmp_path: Path, demo_archive: DemoArchive, caplog: pytest.LogCaptureFixture
) -> None:
    """Reports are made while items are written, side by side: a damaged state is logged, the others publish."""
    cfg = _clone(pristine, tmp_path / "clone", demo_archive)
    pipeline = Pipeline(cfg)
    until = dt.datetime.fromisoformat(UNTIL).replace(tzinfo=dt.UTC)
    for tile in pipeline.tiles:
        assert pipeline.update_tile(tile, until).absorbed  # saved, not yet published
    before = read_index(CatalogLayout(cfg.output.stac_dir)).latest
    damaged, intact = pipeline.tiles
    with netCDF4.Dataset(pipeline.tile_state_path(damaged), "a") as nc:
        nc["q25"][3, 4] = nc["q25"][3, 4] + 1  # the arrays change, the metadata still reads
    assert set(pipeline.unpublished(pipeline.tiles)) == {damaged, intact}
    publication = pipeline.publish(pipeline.tiles)
    assert publication is not None
    assert publication.items[damaged.id] == before.items[damaged.id]  # still the report of its last good state
    assert publication.items[intact.id] != before.items[intact.id]
    assert any(f"tile {damaged.id}: not published" in r.getMessage() for r in caplog.records)
    assert pipeline.unpublished(pipeline.tiles) == [damaged]
