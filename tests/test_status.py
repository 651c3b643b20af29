"""Run history: every update run is recorded; /status and `nrt-alerts status` show it; /healthz goes stale."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from fastapi.testclient import TestClient

from catalog.locking import file_lock
from catalog.runs import RunLog, RunRecord
from scheduler.clock import Clock
from scheduler.config import Config, ScheduleConfig
from scheduler.demo import DemoArchive
from scheduler.jobs import UpdateJob
from scheduler.pipeline import Pipeline
from server.app import create_app
from server.settings import ServerSettings

from conftest import RUN_STEPS, DemoRun, clone_workspace


def test_every_run_is_recorded(tmp_path, demo_archive: DemoArchive, forwarded: Config) -> None:
    # Fitted and updated to RUN_STEPS[0] once per session (conftest), copied.
    cfg = clone_workspace(tmp_path / "ws", forwarded, demo_archive)
    pipeline = Pipeline(cfg)
    job = UpdateJob(pipeline, Clock(start=RUN_STEPS[1], days_per_minute=1e-9), ScheduleConfig())
    job.run_once()
    job.run_once()  # nothing new the second time
    with file_lock(job.lock_path):
        assert job.run_once() is None
    runs = RunLog(cfg.output.run_log).read()
    assert [r.outcome for r in runs] == ["ok", "ok", "skipped"]
    assert runs[0].acquisitions > 5 and runs[0].tiles == 2 and runs[0].version is not None
    assert runs[1].acquisitions == 0 and runs[1].version is None
    assert runs[2].error == "another process held the update lock"
    assert RunLog(cfg.output.run_log).last_success() == runs[1]
    # A source that fails makes a partial run naming the tiles and the cause.
    broken = cfg.model_copy(
        update={"source": cfg.source.model_copy(update={"catalog": tmp_path / "missing" / "catalog.json"})}
    )
    UpdateJob(Pipeline(broken), Clock(start=RUN_STEPS[2]), ScheduleConfig()).run_once()
    last = RunLog(cfg.output.run_log).read()[-1]
    assert last.outcome == "partial" and last.failed_tiles == ["r000c000", "r000c001"]
    assert "r000c000" in last.error and "missing" in last.error
    # `nrt-alerts status` shows the runs newest first and fails when the newest run did not complete.
    cli = subprocess.run(
        [sys.executable, "-m", "server.cli", "status", "-c", str(tmp_path / "ws" / "nrt-alerts.toml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = cli.stdout.splitlines()
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert lines[0].split()[:2] == ["finished", "outcome"] and lines[1].split()[1] == "partial"
    assert [line.split()[1] for line in lines[1:]] == ["partial", "skipped", "ok", "ok"]


def _log_with(path, finished: dt.datetime, outcome: str = "ok") -> None:
    stamp = finished.isoformat(timespec="seconds")
    RunLog(path).append(RunRecord(started=stamp, finished=stamp, until=stamp, outcome=outcome, tiles=2))


def test_healthz_turns_stale_and_status_lists_runs(static_run: DemoRun, tmp_path) -> None:
    log_path = tmp_path / "runs.json"
    now = dt.datetime.now(dt.UTC)
    _log_with(log_path, now - dt.timedelta(hours=2))
    _log_with(log_path, now - dt.timedelta(hours=1), outcome="partial")
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, run_log=log_path, healthz_max_age_seconds=1800)
    with TestClient(create_app(settings)) as client:
        stale = client.get("/healthz")
        assert stale.status_code == 503
        assert stale.json()["status"] == "stale" and "no successful update run for" in stale.json()["reason"]
        status = client.get("/status").json()
        assert [r["outcome"] for r in status["runs"]] == ["partial", "ok"]
        assert status["last_successful_run"] == (now - dt.timedelta(hours=2)).isoformat(timespec="seconds")
        _log_with(log_path, dt.datetime.now(dt.UTC))
        fresh = client.get("/healthz")
        assert fresh.status_code == 200 and fresh.json()["status"] == "ok"
    # Without a limit (no scheduler in this process) /healthz never goes stale.
    with TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))) as client:
        assert client.get("/healthz").status_code == 200
