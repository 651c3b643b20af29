"""The in-process APScheduler job that brings every tile up to 'now' at a fixed interval."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

from apscheduler.schedulers.background import BackgroundScheduler

from catalog.locking import LockTimeout, file_lock
from scheduler.clock import Clock
from scheduler.config import ScheduleConfig
from scheduler.pipeline import Pipeline, RunResult

log = logging.getLogger(__name__)

JOB_ID = "update"


class UpdateJob:
    """One update run at a time per deployment: APScheduler's max_instances within a process, a lock across."""

    def __init__(self, pipeline: Pipeline, clock: Clock, schedule: ScheduleConfig) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.schedule = schedule
        self.lock_path = pipeline.cfg.output.dir / ".update.lock"

    def run_once(self) -> RunResult | None:
        """Absorb what arrived up to the clock's now and publish; None when another process is running."""
        until = self.clock.now()
        try:
            with file_lock(self.lock_path, timeout=0):
                started = dt.datetime.now(dt.UTC)
                result = self.pipeline.run_update(until)
        except LockTimeout:
            log.warning("update skipped: another process is running one (%s)", self.lock_path)
            return None
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        version = result.publication.id if result.publication else "none"
        log.info(
            "update up to %s: %d new acquisition(s), %d tile(s), %d failed, published %s, %.1f s",
            until.strftime("%Y-%m-%d %H:%M"),
            result.acquisitions,
            len(result.tiles),
            len(result.failed),
            version,
            seconds,
        )
        return result

    def _run_safely(self) -> None:
        """Scheduler entry point: a failed run is logged, and the next one tries again."""
        try:
            self.run_once()
        except Exception:
            log.exception("update run failed; the next run will retry")

    @contextlib.contextmanager
    def running(self) -> Iterator[BackgroundScheduler]:
        """Run the job every interval (first run at once) for the duration of the block."""
        scheduler = BackgroundScheduler(timezone=dt.UTC)
        scheduler.add_job(
            self._run_safely,
            "interval",
            seconds=self.schedule.interval_seconds,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(self.schedule.misfire_grace_seconds),
            next_run_time=dt.datetime.now(dt.UTC),
        )
        scheduler.start()
        log.info("scheduler started: update every %.0f s", self.schedule.interval_seconds)
        try:
            yield scheduler
        finally:
            scheduler.shutdown(wait=True)
            log.info("scheduler stopped")
