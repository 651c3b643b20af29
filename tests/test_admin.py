"""State-changing endpoints need the admin bearer token; read endpoints stay public (real HTTP on loopback)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import httpx
import pytest

from catalog.runs import RunLog
from catalog.store import CatalogLayout, read_index
from scheduler.clock import Clock
from scheduler.config import Config, ScheduleConfig
from scheduler.demo import DemoArchive
from scheduler.jobs import UpdateJob
from scheduler.pipeline import Pipeline
from server.app import create_app
from server.auth import AdminTokenError, load_admin_token
from server.cli import main
from server.routers.admin import AdminActions
from server.settings import ServerSettings

from conftest import RUN_STEPS, DemoRun, clone_workspace, free_port, serve_app

TOKEN = "s3cret-admin-token-0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_is_disabled_without_a_token(static_run: DemoRun) -> None:
    app = create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir), admin_actions=AdminActions(lambda: "x"))
    assert not [p for p in app.openapi()["paths"] if p.startswith("/admin")], "disabled endpoints are advertised"
    with serve_app(app) as url:
        for path in ("/admin/run", "/admin/reload"):
            for headers in ({}, bearer(TOKEN), {"Authorization": "Basic eDp5"}):
                response = httpx.post(f"{url}{path}", headers=headers)
                assert response.status_code == 403, (path, headers, response.text)
                assert "no admin token is configured" in response.json()["detail"]
        assert httpx.get(f"{url}/layers").status_code == 200


def test_token_is_required_and_checked(static_run: DemoRun, caplog: pytest.LogCaptureFixture) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, admin_token=TOKEN)
    app = create_app(settings)  # no scheduler in this process
    spec = app.openapi()
    assert {"/admin/run", "/admin/reload"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    latest = read_index(CatalogLayout(settings.stac_dir)).latest.id
    with caplog.at_level(logging.INFO, logger="server.auth"), serve_app(app) as url:
        for path in ("/admin/run", "/admin/reload"):
            missing = httpx.post(f"{url}{path}")
            assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in missing.json()["detail"]
            for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "z" * len(TOKEN)):
                response = httpx.post(f"{url}{path}", headers=bearer(wrong))
                assert response.status_code == 401, (wrong, response.text)
                assert 'error="invalid_token"' in response.headers["www-authenticate"]
                assert response.json() == {"detail": "wrong admin token"}
            basic = httpx.post(f"{url}{path}", auth=("admin", TOKEN))  # the right secret, the wrong scheme
            assert basic.status_code == 401
        # The right token: reload works anywhere, a run needs the scheduler this process does not have.
        reload = httpx.post(f"{url}/admin/reload", headers=bearer(TOKEN))
        assert reload.status_code == 200 and reload.headers["cache-control"] == "no-store"
        assert reload.json()["latest_version"] == latest and reload.json()["publications"] == 4
        run = httpx.post(f"{url}/admin/run", headers=bearer(TOKEN))
        assert run.status_code == 503 and run.json()["detail"].startswith("no scheduler in this process")
        # Reading stays public; GET on an admin path is not a way around the token.
        assert httpx.get(f"{url}/layers").status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/admin/run").status_code == 405
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 * (1 + 4 + 1)
    assert all("from 127.0.0.1" in m for m in refusals)
    assert not any(TOKEN[:12] in r.getMessage() or "zzzzz" in r.getMessage() for r in caplog.records)


def test_token_from_a_file_and_bad_tokens(tmp_path: Path, static_run: DemoRun) -> None:
    stac = static_run.cfg.output.stac_dir
    secret = tmp_path / "admin_token"
    secret.write_text(TOKEN + "\n")  # Docker secrets usually end with a newline
    assert load_admin_token(ServerSettings(stac_dir=stac, admin_token_file=secret)) == TOKEN.encode()
    assert load_admin_token(ServerSettings(stac_dir=stac, admin_token="  ")) is None  # blank = not configured
    for settings, message in (
        (ServerSettings(stac_dir=stac, admin_token="short"), "at least 16 characters"),
        (ServerSettings(stac_dir=stac, admin_token_file=tmp_path / "missing"), "cannot read the admin token file"),
        (ServerSettings(stac_dir=stac, admin_token=TOKEN, admin_token_file=secret), "not both"),
    ):
        with pytest.raises(AdminTokenError, match=message):
            create_app(settings)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AdminTokenError, match="is empty"):
        load_admin_token(ServerSettings(stac_dir=stac, admin_token_file=tmp_path / "empty"))


def test_serve_refuses_a_short_token_with_one_line(
    static_run: DemoRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = static_run.cfg.output.dir.parent / "nrt-alerts.toml"
    monkeypatch.setenv("NRT_ALERTS_SERVER__ADMIN_TOKEN", "tooshort")
    assert main(["serve", "-c", str(config), "--no-scheduler", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nrt-alerts: error: the admin token must have at least 16 characters"


def test_trigger_runs_the_update_and_reload_shows_it(
    tmp_path: Path, demo_archive: DemoArchive, forwarded: Config
) -> None:
    # Fitted and updated to RUN_STEPS[0] once per session (conftest), copied.
    cfg = clone_workspace(tmp_path / "ws", forwarded, demo_archive)
    pipeline = Pipeline(cfg)
    layout = CatalogLayout(cfg.output.stac_dir)
    before = read_index(layout)
    job = UpdateJob(pipeline, Clock(start=RUN_STEPS[1], days_per_minute=1e-9), ScheduleConfig())
    settings = ServerSettings(stac_dir=cfg.output.stac_dir, run_log=cfg.output.run_log, admin_token=TOKEN)
    app = create_app(settings, admin_actions=AdminActions(trigger_run=job.trigger_now))
    with serve_app(app) as url:
        assert httpx.post(f"{url}/admin/run").status_code == 401  # nothing starts without the token
        assert job._triggered is None
        response = httpx.post(f"{url}/admin/run", headers=bearer(TOKEN))
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["state"] == "queued" and body["status"] == f"{url}/status"
        # A run absorbs ~14 acquisitions (seconds): a second trigger meanwhile is refused.
        again = httpx.post(f"{url}/admin/run", headers=bearer(TOKEN))
        assert again.status_code == 409 and "already running" in again.json()["detail"]
        job._triggered.join(timeout=120)
        runs = RunLog(cfg.output.run_log).read()
        assert [r.started for r in runs] == [body["id"]], "exactly the triggered run is recorded"
        assert runs[0].outcome == "ok" and runs[0].acquisitions > 5 and runs[0].version is not None
        assert httpx.get(f"{url}/status").json()["runs"][0]["started"] == body["id"]
        after = read_index(layout)
        assert after.latest.id == runs[0].version and len(after.publications) == len(before.publications) + 1
        versions = httpx.get(f"{url}/layers").json()[0]["versions"]
        assert versions[-1] == runs[0].version
        # Once finished, a new trigger is accepted again (nothing new up to the frozen clock: no version).
        third = httpx.post(f"{url}/admin/run", headers=bearer(TOKEN))
        assert third.status_code == 202
        job._triggered.join(timeout=120)
        assert RunLog(cfg.output.run_log).read()[-1].acquisitions == 0


def _rewrite_keeping_mtime(path: Path, text: str) -> None:
    """Overwrite a file in place (same inode) and put its modification time back."""
    stamp = path.stat()
    with path.open("r+") as f:
        f.write(text)
        f.truncate()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_reload_rereads_an_index_whose_stamp_did_not_change(tmp_path: Path, static_run: DemoRun) -> None:
    """The server sees a new index by its file version (mtime, size, inode); one rewritten in place that keeps all
    three (coarse or unreliable mtimes, a restore from backup) stays stale until an operator's reload re-reads it."""
    stac = tmp_path / "stac"
    shutil.copytree(static_run.cfg.output.stac_dir, stac)
    index_path = CatalogLayout(stac).index_path
    full = index_path.read_text()
    data = json.loads(full)
    assert len(data["publications"]) == 4
    index_path.write_text(json.dumps({**data, "publications": data["publications"][:2]}))
    app = create_app(ServerSettings(stac_dir=stac, admin_token=TOKEN))
    with serve_app(app) as url:
        assert len(httpx.get(f"{url}/layers").json()[0]["versions"]) == 2
        # Rewritten in place with the old mtime and inode but another size: a new version, seen without a reload.
        three = json.dumps({**data, "publications": data["publications"][:3]})
        _rewrite_keeping_mtime(index_path, three[:-1] + " " * (len(full) - len(three)) + "}")
        assert len(httpx.get(f"{url}/layers").json()[0]["versions"]) == 3
        # The full index lands in place with the whole stamp of the previous one (same inode, mtime and size).
        before = index_path.stat()
        _rewrite_keeping_mtime(index_path, full)
        after = index_path.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
        assert len(httpx.get(f"{url}/layers").json()[0]["versions"]) == 3, "stale until reloaded"
        response = httpx.post(f"{url}/admin/reload", headers=bearer(TOKEN))
        assert response.status_code == 200
        assert response.json() == {
            "latest_version": data["publications"][-1]["id"],
            "previous_version": data["publications"][2]["id"],
            "publications": 4,
        }
        assert httpx.get(f"{url}/layers").json()[0]["versions"] == [p["id"] for p in data["publications"]]
