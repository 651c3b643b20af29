"""Tile state files: exact round trips, incremental cycles equal one continuous run, atomic saves."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pytest
import xarray as xr
from pydantic import TypeAdapter

from catalog.series import SERIES_KEY
from scheduler.config import MonitorConfig
from scheduler.demo import DemoArchive
from scheduler.errors import NotFittedError, StateError
from scheduler.loading import acquisition_key, load_index
from scheduler.monitors import SERIES_ATTR, absorb, fit_monitor, report_layers
from scheduler.pipeline import Pipeline, _history_end, read_forest_mask
from scheduler.state import CHECKSUM_ATTR, TileState, _to_dataset, current_state, load_state, save_state

from conftest import DemoRun, make_workspace


def _monitor_vars(state) -> dict:
    return dict(vars(state.monitor.monitor))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[key].dtype, key
            np.testing.assert_array_equal(value, b[key], err_msg=key)
        else:
            assert value == b[key] and type(value) is type(b[key]), key


def test_round_trip_is_exact(static_run: DemoRun, tmp_path) -> None:
    tile = static_run.pipeline.tiles[0]
    state = load_state(static_run.pipeline.tile_state_path(tile))
    save_state(state, tmp_path / "copy.nc")
    again = load_state(tmp_path / "copy.nc")
    _assert_same(_monitor_vars(state), _monitor_vars(again))
    _assert_same(state.monitor.extras, again.monitor.extras)
    # nrt 0.3.0's own NetCDF round trip turns harmonic_order into a numpy scalar and breaks the next load.
    assert type(again.monitor.monitor.harmonic_order) is int
    assert again.crs == tile.crs and again.transform == tile.transform
    assert again.absorbed == state.absorbed and len(again.absorbed) > 50
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_floats_are_stored_raw_and_zlib_states_still_load(static_run: DemoRun, tmp_path) -> None:
    state = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[0]))
    save_state(state, tmp_path / "new.nc")
    with netCDF4.Dataset(tmp_path / "new.nc") as nc:
        filters = {name: var.filters() for name, var in nc.variables.items()}
    assert not filters["beta"]["zlib"] and not filters["q25"]["zlib"]  # the model: raw, fast to write and read
    assert filters["mask"]["zlib"] and filters["process"]["zlib"] and filters["detection_date"]["zlib"]
    assert filters["extra_run_sum"]["zlib"] and filters["extra_run_sum"]["shuffle"]
    # A state written before (every variable zlib level 4) reads back the same, checksum included.
    ds = _to_dataset(state)
    assert ds.attrs[CHECKSUM_ATTR]
    old = {n: {"zlib": True, "complevel": 4, "shuffle": True, "_FillValue": None} for n in ds.data_vars}
    ds.to_netcdf(
        tmp_path / "old.nc", engine="netcdf4", encoding={**old, "x": {"_FillValue": None}, "y": {"_FillValue": None}}
    )
    again = load_state(tmp_path / "old.nc")
    _assert_same(_monitor_vars(state), _monitor_vars(again))
    _assert_same(state.monitor.extras, again.monitor.extras)
    assert again.absorbed == state.absorbed


def test_incremental_cycles_equal_one_continuous_run(static_run: DemoRun) -> None:
    """Fit + three load-update-save cycles give what one in-memory pass gives: same decisions, floats to 1e-6."""
    cfg, pipeline = static_run.cfg, static_run.pipeline
    tile = pipeline.tiles[1]
    start = dt.datetime.combine(cfg.history.start, dt.time.min, tzinfo=dt.UTC)
    history = load_index(pipeline.source.search(tile.bounds_4326, start, _history_end(cfg)), tile, cfg)
    memory = fit_monitor(cfg.monitor, history, read_forest_mask(cfg, tile), cfg.history.end + dt.timedelta(days=1))
    stored = load_state(pipeline.tile_state_path(tile))
    until = dt.datetime.fromisoformat(stored.absorbed[-1]).replace(tzinfo=dt.UTC)
    data = load_index(pipeline.source.search(tile.bounds_4326, _history_end(cfg), until), tile, cfg)
    for i, time in enumerate(data.time.values):
        absorb(memory, data.isel(time=i).values, dt.datetime.fromisoformat(acquisition_key(time)))
    assert [acquisition_key(t) for t in data.time.values] == stored.absorbed
    in_memory = dict(vars(memory.monitor))
    # The state stores float64 fit statistics as float32 (IQR: q25, q75): the stored run saw them rounded once,
    # and must be exactly that rounding; everything monitoring computes from them must be identical.
    compacted = [k for k, v in in_memory.items() if isinstance(v, np.ndarray) and v.dtype == np.float64 and v.ndim > 1]
    assert compacted == ["q25", "q75"]
    for key in compacted:
        np.testing.assert_array_equal(_monitor_vars(stored)[key], in_memory.pop(key).astype(np.float32), err_msg=key)
    # The stored state also carries the pipeline's list of published series chunks, which a bare pass lacks.
    _assert_same(in_memory, {k: v for k, v in _monitor_vars(stored).items() if k not in {*compacted, SERIES_ATTR}})
    # Our float32 scores divide by the IQR: they move by float32 rounding (measured: at most 2.3e-5 on ~100,
    # 2e-7 relative), the decisions (counts, dates, stages) do not move at all.
    for name, value in memory.extras.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(stored.monitor.extras[name], value, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(stored.monitor.extras[name], value, err_msg=name)
    want, got = report_layers(memory, cfg.monitor), report_layers(stored.monitor, cfg.monitor)
    for name, layer in want.items():
        if name == SERIES_KEY:
            continue  # the series export is publishing metadata, not a layer
        if layer.dtype.kind == "f":
            np.testing.assert_allclose(got[name], layer, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], layer, err_msg=name)


@pytest.mark.parametrize("algorithm", ["ewma", "mosum", "ccdc-nrt"])
def test_compact_round_trip_continues_like_memory(static_run: DemoRun, tmp_path, algorithm: str) -> None:
    """Save + load halfway (float64 -> float32 -> float64) and continue: same alerts as the in-memory run."""
    cfg, pipeline = static_run.cfg, static_run.pipeline
    monitor_cfg = TypeAdapter(MonitorConfig).validate_python({"algorithm": algorithm})
    tile = pipeline.tiles[0]
    start = dt.datetime.combine(cfg.history.start, dt.time.min, tzinfo=dt.UTC)
    history = load_index(pipeline.source.search(tile.bounds_4326, start, _history_end(cfg)), tile, cfg)
    monitoring_start = cfg.history.end + dt.timedelta(days=1)
    memory = fit_monitor(monitor_cfg, history, read_forest_mask(cfg, tile), monitoring_start)
    until = dt.datetime(2024, 6, 30, tzinfo=dt.UTC)
    data = load_index(pipeline.source.search(tile.bounds_4326, _history_end(cfg), until), tile, cfg)
    dates = [dt.datetime.fromisoformat(acquisition_key(t)) for t in data.time.values]
    half = len(dates) // 2
    for i in range(half):
        absorb(memory, data.isel(time=i).values, dates[i])
    state = TileState(tile.id, tile.crs, tile.transform, memory, {}, len(history.time), None)
    save_state(state, tmp_path / "state.nc")
    loaded = load_state(tmp_path / "state.nc").monitor
    float64 = {k for k, v in vars(memory.monitor).items() if isinstance(v, np.ndarray) and v.dtype == np.float64}
    assert float64 - {"x", "y"}, "this monitor has float64 state to compact"
    for i in range(half, len(dates)):
        absorb(memory, data.isel(time=i).values, dates[i])
        absorb(loaded, data.isel(time=i).values, dates[i])
    want, got = report_layers(memory, monitor_cfg), report_layers(loaded, monitor_cfg)
    for name in ("status", "date", "confirmed"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for name in ("magnitude", "confidence"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)
    for key, value in vars(memory.monitor).items():
        if isinstance(value, np.ndarray):
            assert vars(loaded.monitor)[key].dtype == value.dtype, key
            if value.dtype.kind in "iub":
                np.testing.assert_array_equal(vars(loaded.monitor)[key], value, err_msg=key)
            else:
                np.testing.assert_allclose(vars(loaded.monitor)[key], value, rtol=1e-5, atol=1e-4, err_msg=key)


def test_failed_save_keeps_the_previous_state(static_run: DemoRun, tmp_path, monkeypatch) -> None:
    path = tmp_path / "state.nc"
    state = load_state(static_run.pipeline.tile_state_path(static_run.pipeline.tiles[0]))
    save_state(state, path)
    before = path.read_bytes()

    def crash(self, target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    state.absorbed.append("2099-01-01T00:00:00")
    with pytest.raises(OSError):
        save_state(state, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.nc"]


def test_update_needs_a_fit_and_matching_settings(tmp_path, demo_archive: DemoArchive) -> None:
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    pipeline = Pipeline(cfg)
    tile = pipeline.tiles[0]
    with pytest.raises(NotFittedError, match="nrt-alerts fit"):
        pipeline.update_tile(tile, dt.datetime(2023, 2, 1, tzinfo=dt.UTC))
    pipeline.fit_tile(tile)
    changed = cfg.model_copy(update={"monitor": cfg.monitor.model_copy(update={"sensitivity": 9.0})})
    with pytest.raises(StateError, match="fitted with other settings"):
        Pipeline(changed).update_tile(tile, dt.datetime(2023, 2, 1, tzinfo=dt.UTC))
    # A corrupt file is reported, not crashed on.
    pipeline.tile_state_path(tile).write_bytes(b"garbage")
    with pytest.raises(StateError, match="unreadable") as raised:
        load_state(pipeline.tile_state_path(tile))
    # The fit kept no earlier generation, so the only way out is to fit again.
    assert str(raised.value).startswith(f"tile {tile.id}: state ") and "nrt-alerts fit --tile" in str(raised.value)


@pytest.mark.parametrize("algorithm", ["iqr", "ewma", "ccdc-nrt"])
def test_a_saved_state_is_in_memory_what_loading_it_reads(static_run: DemoRun, tmp_path, algorithm: str) -> None:
    """After save_state the object holds the file's values (float64 arrays rounded as stored): a tile can go on
    from it, or report it, without reading the file back; current_state hands it over while the file is unchanged."""
    cfg, pipeline = static_run.cfg, static_run.pipeline
    monitor_cfg = TypeAdapter(MonitorConfig).validate_python({"algorithm": algorithm})
    tile = pipeline.tiles[0]
    start = dt.datetime.combine(cfg.history.start, dt.time.min, tzinfo=dt.UTC)
    history = load_index(pipeline.source.search(tile.bounds_4326, start, _history_end(cfg)), tile, cfg)
    memory = fit_monitor(monitor_cfg, history, read_forest_mask(cfg, tile), cfg.history.end + dt.timedelta(days=1))
    float64 = {k for k, v in vars(memory.monitor).items() if isinstance(v, np.ndarray) and v.dtype == np.float64}
    assert float64 - {"x", "y"}, "this monitor has float64 state that is stored narrower"
    state = TileState(tile.id, tile.crs, tile.transform, memory, {}, len(history.time), None)
    path = tmp_path / "state.nc"
    save_state(state, path)
    loaded = load_state(path)
    arrays = {k: v for k, v in _monitor_vars(state).items() if isinstance(v, np.ndarray)}
    _assert_same(arrays, {k: v for k, v in _monitor_vars(loaded).items() if isinstance(v, np.ndarray)})
    _assert_same(state.monitor.extras, loaded.monitor.extras)
    assert current_state(path, state) is state
    # Any other file at the path (another save, a restore) is read, never the object in memory.
    other = load_state(path)
    save_state(other, path)
    assert current_state(path, state) is not state
    assert current_state(path, other) is other
    path.touch()  # rewritten in place: a new modification time
    assert current_state(path, other) is not other
    with pytest.raises(NotFittedError):
        current_state(tmp_path / "missing.nc", other)
