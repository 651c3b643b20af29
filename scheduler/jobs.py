"""The in-process APScheduler job that brings every tile up to 'now' at a fixed interval."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import threading
from collections.abc import Iterator

from apscheduler.schedulers.background import BackgroundScheduler

from catalog.locking import LockTimeout, file_lock
from catalog.runs import RunLog, RunRecord
from scheduler.clock import Clock
from scheduler.config import ScheduleConfig
from scheduler.pipeline import Pipeline, RunResult

log = logging.getLogger(__name__)

JOB_ID = "update"


def record_run(
    run_log: RunLog,
    started: dt.datetime,
    until: dt.datetime,
    outcome: str,
    result: RunResult | None = None,
    error: str | None = None,
) -> None:
    """Append a run to the history that /status and `nrt-alerts status` show."""
    failures = "; ".join(f"{t.tile_id}: {t.error}" for t in result.failed) if result else ""
    run_log.append(
        RunRecord(
            started=started.isoformat(timespec="seconds"),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            until=until.isoformat(timespec="seconds"),
            outcome=outcome,
            tiles=len(result.tiles) if result else 0,
            acquisitions=result.acquisitions if result else 0,
            failed_tiles=[t.tile_id for t in result.failed] if result else [],
            version=result.publication.id if result and result.publication else None,
            error=error or failures or None,
            unreadable_items=sorted({bad for t in result.tiles for bad in t.unreadable}) if result else [],
        )
    )


class UpdateJob:
    """One update run at a time per deployment: APScheduler's max_instances within a process, a lock across."""

    def __init__(self, pipeline: Pipeline, clock: Clock, schedule: ScheduleConfig) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.schedule = schedule
        self.lock_path = pipeline.cfg.output.dir / ".update.lock"
        self.run_log = RunLog(pipeline.cfg.output.run_log)
        # One run at a time in this process, scheduled or triggered (the file lock covers other processes).
        self._busy = threading.Lock()
        self._triggered: threading.Thread | None = None

    def run_once(self, started: dt.datetime | None = None) -> RunResult | None:
        """Absorb what arrived up to the clock's now and publish; None when another process is running."""
        until = self.clock.now()
        started = started or dt.datetime.now(dt.UTC)
        try:
            with file_lock(self.lock_path, timeout=0):
                try:
                    result = self.pipeline.run_update(until)
                except Exception as exc:
                    record_run(
                        self.run_log,
                        started,
                        until,
                        "failed",
                        error=str(exc).splitlines()[0] if str(exc) else repr(exc),
                    )
                    raise
        except LockTimeout:
            log.warning("update skipped: another process is running one (%s)", self.lock_path)
            record_run(self.run_log, started, until, "skipped", error="another process held the update lock")
            return None
        record_run(self.run_log, started, until, "partial" if result.failed else "ok", result)
        if result.publication is not None and self.pipeline.cfg.output.prune:
            try:
                self.pipeline.prune()
            except Exception:  # pruning frees space; a failure leaves everything published in place
                log.exception("pruning after the update failed; the next run tries again")
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

    def _run_safely(self, started: dt.datetime | None = None) -> None:
        """Scheduler entry point: a failed run is logged, and the next one tries again."""
        if started is None and not self._busy.acquire(blocking=False):
            log.info("scheduled update skipped: a triggered run is in progress")
            return
        try:
            self.run_once(started)
        except Exception:
            log.exception("update run failed; the next run will retry")
        finally:
            self._busy.release()

    def trigger_now(self) -> str | None:
        """Start a run in the background now; its id (its `started` in the run history), None if one is running."""
        if not self._busy.acquire(blocking=False):
            return None
        started = dt.datetime.now(dt.UTC)
        self._triggered = threading.Thread(target=self._run_safely, args=(started,), name="update-triggered")
        self._triggered.start()
        return started.isoformat(timespec="seconds")

    def _warm_up(self) -> None:
        """Import what the first new acquisition's run would otherwise wait for; a failure only costs it the time.

        xarray's to_netcdf asks dask which scheduler runs, and that imports dask.distributed: ~0.25 s holding the
        GIL at the process's first state save (the start-up run saves none when nothing is new). The index kernels
        are loaded by every run itself (loading.warming_up), the start-up run first.
        """
        try:
            importlib.import_module("distributed")
        except Exception:
            log.debug("warm-up failed", exc_info=True)

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
        # Beside the first run: ready before the next acquisition arrives.
        threading.Thread(target=self._warm_up, name="nrt-warm-up", daemon=True).start()
        log.info("scheduler started: update every %.0f s", self.schedule.interval_seconds)
        try:
            yield scheduler
        finally:
            scheduler.shutdown(wait=True)
            if self._triggered is not None:
                self._triggered.join()
            log.info("scheduler stopped")
