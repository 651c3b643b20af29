"""Two updates started at once: per-tile locks keep every state exact, and one publication results."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from catalog.store import CatalogLayout, read_index
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline
from scheduler.state import load_state

from conftest import RUN_STEPS, DemoRun, clone_workspace


def _arrays(state) -> dict[str, np.ndarray]:
    monitor = state.monitor.monitor
    arrays = {k: v for k, v in vars(monitor).items() if isinstance(v, np.ndarray)}
    arrays.update({f"extra_{k}": v for k, v in state.monitor.extras.items()})
    return arrays


def test_two_updates_at_once_equal_one_sequential_run(
    tmp_path, demo_archive: DemoArchive, static_run: DemoRun, forwarded: Config
):
    # Fitted and updated to RUN_STEPS[0] once per session (conftest), copied.
    cfg = clone_workspace(tmp_path / "ws", forwarded, demo_archive)
    pipeline = Pipeline(cfg)
    before = len(read_index(CatalogLayout(cfg.output.stac_dir)).publications)
    config = tmp_path / "ws" / "nrt-alerts.toml"
    # Different horizons: without locking, the shorter run could save last and roll the longer one back.
    command = [sys.executable, "-m", "server.cli", "update", "-c", str(config), "--until"]
    procs = [
        subprocess.Popen([*command, until.isoformat()], stderr=subprocess.PIPE, text=True)
        for until in (RUN_STEPS[1], RUN_STEPS[-1])
    ]
    outputs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not any("Traceback" in out for out in outputs)
    for tile in pipeline.tiles:
        state = load_state(pipeline.tile_state_path(tile))
        reference = load_state(static_run.pipeline.tile_state_path(tile))
        assert len(state.absorbed) == len(set(state.absorbed)), "an acquisition was absorbed twice"
        assert state.absorbed == reference.absorbed
        expected = _arrays(reference)
        actual = _arrays(state)
        assert actual.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=f"tile {tile.id}: {name}")
    index = read_index(CatalogLayout(cfg.output.stac_dir))
    # One publication per run that absorbed something, never a duplicate of the same states.
    assert before + 1 <= len(index.publications) <= before + 2
    assert len({p.datetime for p in index.publications}) == len(index.publications)
