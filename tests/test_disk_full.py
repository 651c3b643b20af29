"""A full disk as the operator meets it: one clear line, the failure in the run history and /healthz, nothing lost.

The deployment's output lives on a small tmpfs that the test fills (mounting needs root, as in CI).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import rasterio

from catalog.store import CatalogLayout, read_index
from scheduler.config import Config
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline
from server.app import create_app
from server.settings import ServerSettings

from conftest import make_workspace, serve_app

pytestmark = pytest.mark.slow

FIRST = dt.datetime(2023, 5, 31, 23, 59, tzinfo=dt.UTC)


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` MB mounted at `path`."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about `leave_bytes` free on `folder`'s file system."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as fh:
        fh.truncate(0)
        remaining = max(0, free - leave_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= fh.write(chunk[: min(len(chunk), remaining)])
    return filler


def cli(cfg: Config, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = cfg.output.dir.parent / "nrt-alerts.toml"
    return subprocess.run(
        [sys.executable, "-m", "server", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


def test_a_full_disk_is_one_line_in_the_history_and_healthz_and_loses_nothing(
    tmp_path: Path, demo_archive: DemoArchive
) -> None:
    with small_disk(tmp_path / "disk", 48) as disk:
        cfg = make_workspace(disk / "deploy", demo_archive)
        small = cfg.model_copy(update={"output": cfg.output.model_copy(update={"min_free_mb": 1})})
        Pipeline(small).run_fit(until=FIRST)
        layout = CatalogLayout(cfg.output.stac_dir)
        published = read_index(layout).latest
        assert published is not None
        filler = fill(disk, 64 * 1024)

        # A run starts only with output.min_free_mb free: one line, exit 1, recorded although runs.json is stuck.
        refused = cli(cfg, "update", "--until", "2023-09-30")
        assert refused.returncode == 1, refused.stderr
        lines = [line for line in refused.stderr.splitlines() if line.startswith("nrt-alerts: error:")]
        assert len(lines) == 1 and "MB free on the disk of" in lines[0] and "output.min_free_mb" in lines[0]
        assert "Traceback" not in refused.stderr

        # Without that margin the run hits the full disk in its writes: named as such, no traceback.
        hit = cli(cfg, "update", "--until", "2023-09-30", NRT_ALERTS_OUTPUT__MIN_FREE_MB="0")
        assert hit.returncode == 1, hit.stderr
        assert "no space left on the disk of" in hit.stderr, hit.stderr[-2000:]
        assert "Traceback" not in hit.stderr and "HDF error" not in hit.stderr.split("no space left")[0][-200:]

        status = cli(cfg, "status")
        assert status.returncode == 1, status.stdout
        newest = status.stdout.splitlines()[1]
        assert ("failed" in newest or "partial" in newest) and "no space left on the disk of" in newest
        assert "MB free on the disk of" in status.stdout.splitlines()[2]

        settings = ServerSettings(stac_dir=cfg.output.stac_dir, run_log=cfg.output.run_log)
        with serve_app(create_app(settings)) as url:
            health = httpx.get(f"{url}/healthz")
            assert health.status_code == 503 and health.json()["status"] == "disk-full", health.text
            assert "no space left" in health.json()["last_run_error"]
            assert health.json()["latest_version"] == published.id
            runs = httpx.get(f"{url}/status").json()["runs"]
            assert runs[0]["error"] and "no space left" in runs[0]["error"]

        # Nothing published is lost: the latest version is the one before, and every file it names reads whole.
        index = read_index(layout)
        assert index.latest.id == published.id
        for rel in index.latest.mosaics.values():
            with rasterio.open(layout.collection_dir / rel) as src:
                src.read(1)

        # With room again, the next run catches up and the history moves back to runs.json.
        filler.unlink()
        again = cli(cfg, "update", "--until", "2023-09-30", NRT_ALERTS_OUTPUT__MIN_FREE_MB="1")
        assert again.returncode == 0, again.stderr
        assert read_index(layout).latest.id != published.id
        status = cli(cfg, "status")
        assert status.returncode == 0 and len(status.stdout.splitlines()) == 1 + 3
        assert cfg.output.run_log.is_file()
