"""Log lines: one per event, ISO timestamps with a zone, JSON lines carrying tile, acquisition and cause."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pystac

from scheduler.demo import DemoArchive
from scheduler.logs import JsonFormatter, TextFormatter, setup_logging

from conftest import DemoRun, make_workspace

REPO = Path(__file__).resolve().parents[1]
ISO_ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def _record(exc: bool = False, **extra: object) -> logging.LogRecord:
    """A record as logging makes it, with extra= fields and optionally the exception being handled."""
    logger = logging.getLogger("scheduler.pipeline")
    exc_info = None
    if exc:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            exc_info = sys.exc_info()
    return logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__,
        1,
        "tile %s: update failed: %s",
        ("r000c000", "boom"),
        exc_info,
        extra=extra,
    )


def test_json_line_has_time_level_logger_message_and_the_event_fields() -> None:
    line = JsonFormatter().format(_record(tile="r000c000", acquisition="2024-01-06T10:12:00", cause="HTTP 404"))
    assert "\n" not in line
    entry = json.loads(line)
    assert ISO_ZONED.match(entry["time"]), entry["time"]
    assert abs(dt.datetime.fromisoformat(entry["time"]) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert entry["level"] == "ERROR" and entry["logger"] == "scheduler.pipeline"
    assert entry["message"] == "tile r000c000: update failed: boom"
    assert (entry["tile"], entry["acquisition"], entry["cause"]) == ("r000c000", "2024-01-06T10:12:00", "HTTP 404")
    assert "traceback" not in entry


def test_json_line_keeps_a_traceback_in_one_field() -> None:
    line = JsonFormatter().format(_record(exc=True, tile="r000c001"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["traceback"].startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in entry["traceback"] and entry["traceback"].count("\n") >= 2
    assert entry["cause"] == "ZeroDivisionError: division by zero"  # no cause given: the exception is the cause
    assert entry["acquisition"] is None


def test_text_line_is_one_line_with_zoned_timestamp_and_folded_traceback() -> None:
    line = TextFormatter().format(_record(exc=True, tile="r000c000", acquisition="2024-01-06T10:12:00"))
    assert "\n" not in line
    stamp, level, logger, rest = re.split(r" +", line, maxsplit=3)
    assert ISO_ZONED.match(stamp) and level == "ERROR" and logger == "scheduler.pipeline:"
    # The tile is in the message already; the acquisition is not, so it is added.
    assert rest.startswith("tile r000c000: update failed: boom [acquisition=2024-01-06T10:12:00] | Traceback")
    assert rest.endswith("ZeroDivisionError: division by zero")


def test_setup_logging_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    level = root.level
    try:
        setup_logging("info", "json", first)
        setup_logging("info", "json", second)
        logging.getLogger("scheduler.test").info("hello", extra={"tile": "r000c000"})
        assert first.getvalue() == ""
        assert json.loads(second.getvalue())["tile"] == "r000c000"
        assert foreign in root.handlers
    finally:
        for handler in [h for h in root.handlers if h.get_name() == "nrt-alerts"]:
            root.removeHandler(handler)
        root.removeHandler(foreign)
        root.setLevel(level)


def _failing_deployment(root: Path, run: DemoRun, archive: DemoArchive) -> tuple[Path, str]:
    """The static run's states, and a catalog with one new acquisition whose red asset is missing."""
    config = make_workspace(root, archive)
    shutil.copytree(run.cfg.output.state_dir, config.output.state_dir)
    catalog = pystac.Catalog.from_file(str(run.cfg.source.catalog))
    last = max(catalog.get_items(recursive=True), key=lambda i: i.datetime)
    last.make_asset_hrefs_absolute()
    item = last.clone()
    item.clear_links()
    item.id, item.datetime = "S2X_DEMO_20240705", dt.datetime(2024, 7, 5, 10, 12, tzinfo=dt.UTC)
    item.assets["red"].href = str(root / "missing" / "S2X_DEMO_20240705_red.tif")
    new = pystac.Catalog(id="new", description="one new acquisition")
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    collection = pystac.Collection(id=run.cfg.source.collection, description="new", extent=extent, license="other")
    new.add_child(collection)
    collection.add_item(item)
    new.normalize_hrefs(str(root / "new"))
    new.save(pystac.CatalogType.SELF_CONTAINED)
    toml = root / "nrt-alerts.toml"
    toml.write_text(toml.read_text().replace('"archive/catalog.json"', f'"{root / "new" / "catalog.json"}"'))
    return toml, "2024-07-05T10:12:00"


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`nrt-alerts ... update -c config --until 2024-07-31` with JSON asked by the environment, no retries."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NRT_ALERTS_LOGGING__FORMAT": "json",
        "NRT_ALERTS_SOURCE__RETRIES": "0",
    }
    command = [sys.executable, "-m", "server.cli", *args, "update", "-c", str(config), "--until", "2024-07-31"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def test_json_output_of_a_failing_run_parses_line_by_line_and_names_tile_acquisition_cause(
    static_run: DemoRun, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    config, key = _failing_deployment(tmp_path, static_run, demo_archive)
    done = _run(config)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(
        ISO_ZONED.match(e["time"]) and {"level", "logger", "message", "tile", "cause"} <= e.keys() for e in entries
    )
    errors = [e for e in entries if e["level"] == "ERROR"]
    assert sorted(e["tile"] for e in errors) == ["r000c000", "r000c001"]
    for entry in errors:
        assert entry["acquisition"] == key
        assert "S2X_DEMO_20240705_red.tif" in entry["cause"] and "No such file" in entry["cause"]
        assert "S2X_DEMO_20240705" in entry["message"]
    assert any(e["message"].startswith("update done: 2 tile(s), 0 acquisition(s) absorbed, 2 failed") for e in entries)


def test_text_output_when_the_flag_says_so_over_the_environment(
    static_run: DemoRun, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    config, key = _failing_deployment(tmp_path, static_run, demo_archive)
    done = _run(config, "--log-format", "text")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and all(ISO_ZONED.match(line.split(" ", 1)[0]) for line in lines), done.stderr
    errors = [line for line in lines if " ERROR " in line]
    # One line per tile; tiles run side by side, so the lines come in either order.
    assert sorted(("r000c000" in e, "r000c001" in e) for e in errors) == [(False, True), (True, False)]
    assert all(key in e and "S2X_DEMO_20240705_red.tif" in e and "No such file" in e for e in errors)


def test_the_operator_skips_an_acquisition_that_stays_broken(
    static_run: DemoRun, demo_archive: DemoArchive, tmp_path: Path
) -> None:
    config, key = _failing_deployment(tmp_path, static_run, demo_archive)
    done = _run(config, "--log-level", "info")
    assert done.returncode == 1
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "--log-format", "json", "update", "-c", str(config)]
        + ["--until", "2024-07-31", "--skip-acquisition", "S2X_DEMO_20240705"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    skipped = [e for e in entries if "source.skip_acquisitions" in e["message"]]
    assert len(skipped) == 2 and all(e["acquisition"] == key for e in skipped)  # once per tile
    assert not [e for e in entries if e["level"] == "ERROR"]
