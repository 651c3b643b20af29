"""The in-process scheduler: a demo clock, interval runs that publish, one run at a time."""

from __future__ import annotations

import datetime as dt
import time

from catalog.locking import file_lock
from catalog.store import CatalogLayout, read_index
from scheduler.clock import Clock
from scheduler.config import Config, ScheduleConfig
from scheduler.demo import DemoArchive
from scheduler.jobs import UpdateJob
from scheduler.pipeline import Pipeline

from conftest import RUN_STEPS, clone_workspace, make_workspace


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_demo_clock_runs_fast_and_stops() -> None:
    wall = FakeWall()
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    clock = Clock(start=start, days_per_minute=15, stop=dt.datetime(2024, 2, 1, tzinfo=dt.UTC), wall=wall)
    assert clock.now() == start
    wall.seconds = 20
    assert clock.now() == start + dt.timedelta(days=5)
    wall.seconds = 3600
    assert clock.now() == dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    real = Clock().now()
    assert abs((real - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_scheduled_runs_publish_new_acquisitions(tmp_path, demo_archive: DemoArchive, forwarded: Config) -> None:
    # Fitted and updated to RUN_STEPS[0] once per session (conftest), copied.
    cfg = clone_workspace(tmp_path / "ws", forwarded, demo_archive)
    pipeline = Pipeline(cfg)
    layout = CatalogLayout(cfg.output.stac_dir)
    before = len(read_index(layout).publications)
    # 30 simulated days per wall second, a run every second: each run finds new acquisitions.
    clock = Clock(start=RUN_STEPS[0], days_per_minute=30 * 60)
    job = UpdateJob(pipeline, clock, ScheduleConfig(interval_seconds=1))
    with job.running() as scheduler:
        assert scheduler.get_job("update").max_instances == 1
        deadline = time.monotonic() + 60
        while len(read_index(layout).publications) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    publications = read_index(layout).publications
    assert len(publications) >= before + 2
    assert publications[-1].datetime > publications[before].datetime > RUN_STEPS[0]


def test_run_is_skipped_while_another_process_holds_the_lock(tmp_path, demo_archive: DemoArchive) -> None:
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    job = UpdateJob(Pipeline(cfg), Clock(start=RUN_STEPS[0]), ScheduleConfig())
    with file_lock(job.lock_path):
        assert job.run_once() is None
