"""Tiles on dask.distributed, row-block fits and batched updates give the serial pipeline's results."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster
from test_monitors import EVERY_ALGORITHM, HISTORY_END, _cube, _forest

from catalog.encoding import CONFIRMED_CODES
from catalog.store import CatalogLayout, read_index
from scheduler import parallel
from scheduler import pipeline as pipeline_module
from scheduler.blocks import absorb_all
from scheduler.config import ComputeConfig, Config, parse_monitor
from scheduler.demo import DemoArchive
from scheduler.grid import Tile
from scheduler.loading import load_index_and_bands, load_new_index
from scheduler.monitors import SERIES_ATTR, fit_monitor, report_layers
from scheduler.pipeline import Pipeline
from scheduler.state import TileState, load_state, save_state

from conftest import RUN_STEPS, DemoRun, latest_layers, make_workspace

FIRST_UPDATE = RUN_STEPS[0]  # 2024-01-01: a year of acquisitions after the history
EARLY_UPDATE = dt.datetime(2023, 4, 1, tzinfo=dt.UTC)  # three months


def with_compute(cfg: Config, **values: object) -> Config:
    """The config with some [compute] settings changed."""
    return cfg.model_copy(update={"compute": cfg.compute.model_copy(update=values)})


def with_monitor(cfg: Config, monitor: object) -> Config:
    return cfg.model_copy(update={"monitor": monitor})


def dask_cfg(cfg: Config, **values: object) -> Config:
    """Two worker processes, as deployed (one LocalCluster for the whole module: the settings are the same)."""
    return with_compute(cfg, executor="dask", n_workers=2, threads_per_worker=1, processes=True, **values)


def assert_states_equal(a: TileState, b: TileState, *, same_chunks: bool = True) -> None:
    """Every per-pixel array, scalar and bookkeeping list equal (NaN equals NaN)."""
    if not same_chunks:  # runs that loaded other batches published other series chunks of the same values
        a, b = (copy.deepcopy(s) for s in (a, b))
        for s in (a, b):
            setattr(s.monitor.monitor, SERIES_ATTR, None)
    assert a.absorbed == b.absorbed
    assert a.history_acquisitions == b.history_acquisitions
    left, right = vars(a.monitor.monitor), vars(b.monitor.monitor)
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, right[name], err_msg=name)
        else:
            assert value == right[name] or (value != value and right[name] != right[name]), name
    for name, value in a.monitor.extras.items():
        np.testing.assert_array_equal(value, b.monitor.extras[name], err_msg=name)


@pytest.fixture(scope="module", autouse=True)
def _close_cluster() -> Iterator[None]:
    """The module's LocalClusters end with it."""
    yield
    parallel.close()


@pytest.fixture(scope="module")
def fitted_states(fitted: Config) -> Path:
    """States fitted serially once (conftest's `fitted`); tests copy them into their own workspace."""
    return fitted.output.state_dir


def fitted_workspace(root: Path, archive: DemoArchive, states: Path) -> Config:
    """A fresh deployment holding copies of the fitted states (nothing published yet)."""
    cfg = make_workspace(root, archive)
    shutil.copytree(states, cfg.output.state_dir)
    return cfg


def test_dask_run_equals_serial_run(tmp_path: Path, demo_archive: DemoArchive, static_run: DemoRun) -> None:
    """Fit + three updates on a 2-worker cluster: the same states and published layers as the serial run."""
    cfg = dask_cfg(make_workspace(tmp_path, demo_archive))
    done = []
    pipeline = Pipeline(cfg)
    fit = pipeline.run_fit(progress=done.append)
    assert not fit.failed and done == [1, 1]
    run = DemoRun(cfg, pipeline, fit, [pipeline.run_update(until) for until in RUN_STEPS])
    # Each tile is published on its own, as it completes: two publications per run, the first names one tile.
    for result in (run.fit, *run.updates):
        assert [len(p.items) for p in result.publications] == [1 if result is run.fit else 2, 2]
        assert result.publication == result.publications[-1]
    assert sum(len(t.absorbed) for t in run.updates[0].tiles) > 100
    for tile in pipeline.tiles:
        assert_states_equal(
            load_state(pipeline.tile_state_path(tile)), load_state(static_run.pipeline.tile_state_path(tile))
        )
    ours, theirs = latest_layers(run), latest_layers(static_run)
    assert ours.keys() == theirs.keys()
    for asset in ours:
        np.testing.assert_array_equal(ours[asset], theirs[asset], err_msg=asset)
    assert int(((ours["status"] >= 2) & (ours["status"] <= 8)).sum()) > 100  # alerts, not an empty map


def test_each_tile_published_as_soon_as_done(tmp_path: Path, demo_archive: DemoArchive, fitted_states: Path) -> None:
    """When the client learns a tile is done, that tile is already in the latest publication, alone at first."""
    cfg = dask_cfg(fitted_workspace(tmp_path, demo_archive, fitted_states))
    layout = CatalogLayout(cfg.output.stac_dir)
    seen: list[tuple[str, dict]] = []

    def progress(outcome: object) -> None:
        seen.append((outcome.tile_id, dict(read_index(layout).latest.items)))

    pipeline = Pipeline(cfg)
    result = parallel.run_tiles(pipeline, pipeline.tiles, parallel.update_task, FIRST_UPDATE, progress=progress)
    assert len(seen) == 2
    (first, at_first), (second, at_second) = seen
    assert set(at_first) == {first}  # published before the other tile was even looked at
    assert set(at_second) == {first, second}
    assert [set(p.items) for p in result.publications] == [{first}, {first, second}]
    assert result.publications[0].published <= result.publications[1].published
    assert [t.tile_id for t in result.tiles] == [t.id for t in pipeline.tiles]  # outcomes in tile order


def test_failing_tile_reported_other_published(tmp_path: Path, demo_archive: DemoArchive, fitted_states: Path) -> None:
    """A state fitted with other settings fails its tile on the cluster; the other tile is absorbed and published."""
    cfg = dask_cfg(fitted_workspace(tmp_path, demo_archive, fitted_states))
    pipeline = Pipeline(cfg)
    bad, good = pipeline.tiles
    state = load_state(pipeline.tile_state_path(bad))
    state.fingerprint = {**state.fingerprint, "index": "nbr"}
    save_state(state, pipeline.tile_state_path(bad))
    result = pipeline.run_update(FIRST_UPDATE)
    outcomes = {t.tile_id: t for t in result.tiles}
    assert "other settings" in outcomes[bad.id].error
    assert outcomes[good.id].ok and len(outcomes[good.id].absorbed) > 50
    assert [set(p.items) for p in result.publications] == [{good.id}]
    assert load_state(pipeline.tile_state_path(good)).absorbed == outcomes[good.id].absorbed


def test_existing_cluster_address_with_worker_processes(
    tmp_path: Path, demo_archive: DemoArchive, fitted_states: Path
) -> None:
    """A cluster started elsewhere (worker processes: Config, tasks and outcomes pickle) runs the tiles."""
    serial_cfg = fitted_workspace(tmp_path / "serial", demo_archive, fitted_states)
    serial = Pipeline(serial_cfg).run_update(EARLY_UPDATE)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        cfg = with_compute(
            fitted_workspace(tmp_path / "remote", demo_archive, fitted_states),
            scheduler_address=cluster.scheduler_address,
        )
        assert parallel.use_dask(cfg) and not parallel.use_dask(with_compute(cfg, executor="serial"))
        pipeline = Pipeline(cfg)
        result = pipeline.run_update(EARLY_UPDATE)
        prefixes = cluster.scheduler.task_prefixes
        assert "update_task" in prefixes and sum(prefixes["update_task"].state_counts.values()) >= 2
        parallel.close()
        assert cluster.status.name == "running"  # closing our client leaves a cluster we did not start running
    assert not result.failed and [len(t.absorbed) for t in result.tiles] == [len(t.absorbed) for t in serial.tiles]
    assert len(result.tiles[0].absorbed) > 10
    for tile in pipeline.tiles:
        assert_states_equal(
            load_state(pipeline.tile_state_path(tile)), load_state(Pipeline(serial_cfg).tile_state_path(tile))
        )


@pytest.mark.parametrize(
    "monitor",
    [
        None,  # the demo's IQR (OLS)
        {"algorithm": "cusum"},  # ROC: each pixel's own stable period
        {"algorithm": "ccdc-nrt"},
        {"algorithm": "mosum"},  # its residual window's length is the block's longest: blocks differ
    ],
    ids=["iqr", "cusum-roc", "ccdc-nrt", "mosum"],
)
def test_block_fit_equals_whole_fit(tmp_path: Path, demo_archive: DemoArchive, monitor: dict | None) -> None:
    """nrt fits every pixel on its own: row blocks of 23 rows (uneven last block) give the whole-tile fit exactly.

    So do fit blocks of 10 rows taken from loads of 22 rows (one load reads several fit blocks' rows).
    """
    from scheduler.config import parse_monitor

    base = make_workspace(tmp_path / "whole", demo_archive)
    # The area's top-left 64 x 64 px as one tile keeps ROC and CCDC-NRT fits short.
    minx, _, _, maxy = base.area.bounds
    size = 64 * base.area.resolution
    area = base.area.model_copy(update={"bounds": (minx, maxy - size, minx + size, maxy), "tile_size": 64})
    base = base.model_copy(update={"area": area})
    if monitor:
        base = with_monitor(base, parse_monitor(monitor))
    whole = with_compute(base, fit_block_rows=64, fit_block_values=10**9)
    (tile,) = Pipeline(whole).tiles
    a = Pipeline(whole).fit_tile(tile)
    # Loads of 22, 22 and 20 rows, each fitted in blocks of 10 rows: block edges inside and across loads.
    loads = with_compute(base, fit_block_rows=10, load_block_values=64 * 30 * a.history_acquisitions)
    out = {"output": base.output.model_copy(update={"dir": tmp_path / "blocks"})}
    blocks = with_compute(base, fit_block_rows=23).model_copy(update=out)
    b = Pipeline(blocks).fit_tile(tile)
    assert_states_equal(a, b)
    heights: list[int] = []

    def counting_load(items: list, part: Tile, *args: object) -> object:
        heights.append(part.height)
        return load_index_and_bands(items, part, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline_module, "load_index_and_bands", counting_load)
        c = Pipeline(loads.model_copy(update={"output": base.output.model_copy(update={"dir": tmp_path / "c"})}))
        assert_states_equal(a, c.fit_tile(tile))
    assert heights == [22, 22, 20]
    assert int((a.monitor.monitor.mask == 1).sum()) > 400  # forest, fitted and monitored
    assert_states_equal(
        load_state(Pipeline(blocks).tile_state_path(tile)), load_state(Pipeline(whole).tile_state_path(tile))
    )


def test_batched_update_equals_one_shot(
    tmp_path: Path, demo_archive: DemoArchive, fitted_states: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 5 dates: the same state as one load of everything; absorbed dates are never loaded again."""
    loaded: list[int] = []

    def counting_load(*args: object) -> object:
        data = load_new_index(*args)
        loaded.append(data.sizes["time"])
        return data

    one = with_compute(fitted_workspace(tmp_path / "one", demo_archive, fitted_states), batch_acquisitions=10000)
    batched = with_compute(fitted_workspace(tmp_path / "batched", demo_archive, fitted_states), batch_acquisitions=5)
    monkeypatch.setattr(pipeline_module, "load_new_index", counting_load)
    tile = Pipeline(one).tiles[1]
    whole = Pipeline(one).update_tile(tile, RUN_STEPS[-1])
    assert loaded == [len(whole.absorbed)] and len(whole.absorbed) > 100
    loaded.clear()
    pipeline = Pipeline(batched)
    first = pipeline.update_tile(tile, RUN_STEPS[1])
    second = pipeline.update_tile(tile, RUN_STEPS[-1])
    assert max(loaded) == 5 and sum(loaded) == len(whole.absorbed)  # each date loaded exactly once
    assert first.absorbed + second.absorbed == whole.absorbed
    assert_states_equal(
        load_state(pipeline.tile_state_path(tile)), load_state(Pipeline(one).tile_state_path(tile)), same_chunks=False
    )
    loaded.clear()
    assert pipeline.update_tile(tile, RUN_STEPS[-1] + dt.timedelta(days=1)).absorbed == []
    assert loaded == []  # nothing new: nothing loaded


def test_fit_block_rows_shrink_with_the_history() -> None:
    """A block holds at most fit_block_values values: a longer history means fewer rows, the same memory."""
    from affine import Affine
    from rasterio.crs import CRS

    from scheduler.blocks import block_rows, load_rows
    from scheduler.config import ComputeConfig
    from scheduler.grid import Tile

    tile = Tile("r000c000", 0, 0, width=128, height=128, transform=Affine.identity(), crs=CRS.from_epsg(32633))
    compute = ComputeConfig(fit_block_rows=100, fit_block_values=128 * 50 * 200)
    assert block_rows(compute, tile, 100) == 100  # capped by fit_block_rows
    assert block_rows(compute, tile, 200) == 50
    assert block_rows(compute, tile, 400) == 25
    assert block_rows(compute, tile, 10**9) == 1
    # A load reads at most load_block_values' worth of rows (or a fit block's), in as few loads of equal size.
    compute = compute.model_copy(update={"load_block_values": 128 * 100 * 200})
    assert load_rows(compute, tile, 200) == 64  # at most 100 rows: 2 loads of 64, each fitted in blocks of 50
    assert load_rows(compute, tile, 600) == 32  # at most 33 rows: 4 loads
    assert load_rows(compute, tile, 100) == 128  # the whole tile in one load
    assert load_rows(compute, tile, 10**9) == 1
    assert load_rows(compute.model_copy(update={"load_block_values": 1}), tile, 200) == 43  # fit blocks' 50: 3 loads


@pytest.mark.parametrize(
    "monitor",
    EVERY_ALGORITHM,
    ids=lambda m: m["algorithm"],
)
@pytest.mark.parametrize("threads", [2, 5])
def test_threaded_absorb_equals_serial(monitor: dict, threads: int) -> None:
    """Row blocks absorbing on threads leave exactly the arrays one whole-tile absorb does."""
    cfg = parse_monitor(monitor)
    history = _cube("2021-01-01", "2022-12-31", seed=1)
    monitoring = _cube("2023-01-01", "2023-12-31", seed=2)
    acquisitions = [
        (monitoring.isel(time=i).values, pd.Timestamp(t).to_pydatetime()) for i, t in enumerate(monitoring.time.values)
    ]
    serial = fit_monitor(cfg, history, _forest(), HISTORY_END + dt.timedelta(days=1))
    threaded = copy.deepcopy(serial)
    serial = absorb_all(serial, acquisitions, threads=1)
    threaded = absorb_all(threaded, acquisitions, threads=threads)
    confirmed = np.isin(report_layers(serial, cfg)["status"], CONFIRMED_CODES)
    assert confirmed.sum() >= 9, "the planted drop is confirmed: the test compares breaks"
    for name, value in vars(serial.monitor).items():
        other = getattr(threaded.monitor, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value, err_msg=name)
            assert other.dtype == value.dtype, name
    for name, value in serial.extras.items():
        np.testing.assert_array_equal(threaded.extras[name], value, err_msg=name)


@pytest.mark.parametrize(("threads", "expected"), [(2, [(2, 1), (1, 2), (2, 1)]), (8, [(4, 2), (1, 8), (3, 2)])])
def test_tile_plan_splits_the_threads_between_tiles_side_by_side(threads: int, expected: list) -> None:
    """One tile per thread, no more side by side than the run has tiles; a lone tile gets every thread."""
    compute = ComputeConfig(threads=threads)
    assert [compute.tile_plan(tiles) for tiles in (4, 1, 3)] == expected
    assert compute.model_copy(update={"tiles_at_once": 1}).tile_plan(4) == (1, threads)


def test_fit_forward_one_tile_at_a_time_equals_the_shared_run(
    tmp_path: Path, demo_archive: DemoArchive, static_run: DemoRun
) -> None:
    """fit(until=...) with tiles one after another: the states and layers of fit + updates with tiles side by side."""
    assert static_run.cfg.compute.tile_plan(len(static_run.pipeline.tiles))[0] in (1, 2)
    cfg = with_compute(make_workspace(tmp_path, demo_archive), threads=1, tiles_at_once=1)
    pipeline = Pipeline(cfg)
    result = pipeline.run_fit(until=RUN_STEPS[-1])
    assert not result.failed and len(result.publications) == 1
    assert sum(len(t.absorbed) for t in result.tiles) > 100
    for tile in pipeline.tiles:
        ours, theirs = (load_state(p.tile_state_path(tile)) for p in (pipeline, static_run.pipeline))
        assert_states_equal(ours, theirs, same_chunks=False)  # one run absorbed in one batch sequence, not three
    layers = latest_layers(DemoRun(cfg, pipeline, result, []))
    for asset, values in latest_layers(static_run).items():
        np.testing.assert_array_equal(layers[asset], values, err_msg=asset)


def test_dask_fit_forward_equals_the_shared_run(tmp_path: Path, demo_archive: DemoArchive, static_run: DemoRun) -> None:
    """fit(until=...) on the cluster: each tile's task fits and fast-forwards it, and is published when done."""
    cfg = dask_cfg(make_workspace(tmp_path, demo_archive))
    pipeline = Pipeline(cfg)
    result = pipeline.run_fit(until=RUN_STEPS[-1])
    assert not result.failed and [len(p.items) for p in result.publications] == [1, 2]
    assert sum(len(t.absorbed) for t in result.tiles) > 100
    for tile in pipeline.tiles:
        ours, theirs = (load_state(p.tile_state_path(tile)) for p in (pipeline, static_run.pipeline))
        assert_states_equal(ours, theirs, same_chunks=False)
    layers = latest_layers(DemoRun(cfg, pipeline, result, []))
    for asset, values in latest_layers(static_run).items():
        np.testing.assert_array_equal(layers[asset], values, err_msg=asset)
