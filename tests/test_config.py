"""The deployment config: the demo's loads, paths resolve beside the file, the environment wins, errors are one line."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler.config import ENV_PREFIX, Config, load_config
from scheduler.demo_setup import CLOCK_START, HISTORY, write_demo_config
from scheduler.errors import ConfigError

from conftest import TEST_SPEC, TILE_SIZE


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NRT_ALERTS_* variable of the shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The demo's generated config in its own folder (the archive need not exist to load it)."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    return write_demo_config(folder, TEST_SPEC, tile_size=TILE_SIZE)


def edited(config: Path, edit: Callable[[str], str], name: str = "edited.toml") -> Path:
    """A copy of `config` beside it with `edit` applied (which must change something)."""
    text = config.read_text()
    new = edit(text)
    assert new != text, "the edit did not apply: the demo config template changed"
    path = config.with_name(name)
    path.write_text(new)
    return path


def sub(pattern: str, repl: str) -> Callable[[str], str]:
    """An edit replacing one regex match (multiline)."""
    return lambda text: re.sub(pattern, repl, text, count=1, flags=re.MULTILINE)


def in_section(section: str, line: str) -> Callable[[str], str]:
    """An edit adding a line at the top of a [section]."""
    return lambda text: text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


def refused(path: Path) -> str:
    """load_config's message for a config it refuses; always exactly one line."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    assert info.value.exit_code == 2
    return message


# --- what loads ------------------------------------------------------------------------------------------------


def test_demo_config_loads(demo_config: Path) -> None:
    cfg = load_config(demo_config)
    assert isinstance(cfg, Config)
    assert cfg.area.crs == f"EPSG:{TEST_SPEC.epsg}"
    assert cfg.area.resolution == TEST_SPEC.resolution
    minx, miny, maxx, maxy = cfg.area.bounds
    assert (maxx - minx, maxy - miny) == (
        TEST_SPEC.width * TEST_SPEC.resolution,
        TEST_SPEC.height * TEST_SPEC.resolution,
    )
    assert cfg.area.tile_size == TILE_SIZE
    assert cfg.source.kind == "static" and cfg.source.collection == TEST_SPEC.collection_id
    assert cfg.index.name == "ndvi"
    assert cfg.monitor.algorithm == "iqr" and cfg.monitor.sensitivity == 2.5
    assert (cfg.history.start, cfg.history.end) == HISTORY
    assert cfg.clock.kind == "demo" and cfg.clock.start == CLOCK_START
    assert cfg.clock.stop == dt.datetime.combine(TEST_SPEC.end, dt.time(23, 59, 59), dt.UTC)


def test_relative_paths_resolve_against_the_config_folder(
    demo_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # The config named relative to the working directory; its paths still resolve beside the file.
    cfg = load_config(Path("..") / "deploy" / demo_config.name)
    folder = demo_config.parent.resolve()
    assert cfg.source.catalog == folder / "archive" / "catalog.json"
    assert cfg.forest_mask.path == folder / "archive" / "forest_mask.tif"
    assert cfg.output.dir == folder / "output"
    assert cfg.output.stac_dir == folder / "output" / "stac"
    assert all(p.is_absolute() for p in (cfg.source.catalog, cfg.forest_mask.path, cfg.output.dir))


def test_absolute_paths_are_kept(demo_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "somewhere" / "else"
    cfg = load_config(edited(demo_config, sub(r'^dir = "output"$', f'dir = "{out.as_posix()}"')))
    assert cfg.output.dir == out


def test_environment_overrides_the_file(demo_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(demo_config).monitor.sensitivity == 2.5
    monkeypatch.setenv("NRT_ALERTS_MONITOR__SENSITIVITY", "2")
    monkeypatch.setenv("NRT_ALERTS_SOURCE__KIND", "stac-api")
    monkeypatch.setenv("NRT_ALERTS_SOURCE__URL", "http://127.0.0.1:9/stac")
    monkeypatch.setenv("NRT_ALERTS_SERVER__PORT", "8123")
    monkeypatch.setenv("NRT_ALERTS_OUTPUT__DIR", "elsewhere")
    cfg = load_config(demo_config)
    assert cfg.monitor.sensitivity == 2.0
    assert cfg.source.kind == "stac-api" and cfg.source.url == "http://127.0.0.1:9/stac"
    # Keys the environment does not name keep the file's values.
    assert cfg.source.collection == TEST_SPEC.collection_id and cfg.source.max_cloud_cover == 95
    assert cfg.monitor.boundary == 3
    assert cfg.server.port == 8123
    # A relative path from the environment resolves beside the file too.
    assert cfg.output.dir == demo_config.parent.resolve() / "elsewhere"


def test_environment_values_are_validated(demo_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NRT_ALERTS_AREA__TILE_SIZE", "8")
    message = refused(demo_config)
    assert "area.tile_size" in message
    monkeypatch.delenv("NRT_ALERTS_AREA__TILE_SIZE")
    monkeypatch.setenv("NRT_ALERTS_MONITOR__SENSITIVITY", "high")
    assert "monitor.sensitivity" in refused(demo_config)


def test_environment_value_that_does_not_parse_is_one_line(demo_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NRT_ALERTS_AREA__BOUNDS", "not-a-list")
    message = refused(demo_config)
    assert "NRT_ALERTS_" in message and "area" in message


# --- what is refused, with one line naming the field ---------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "nrt-alerts.toml"
    message = refused(path)
    assert "not found" in message and str(path) in message


def test_invalid_toml(demo_config: Path) -> None:
    message = refused(edited(demo_config, lambda text: text + "\n[area\n"))
    assert "not valid TOML" in message and "line" in message


CASES: dict[str, tuple[Callable[[str], str], str, str]] = {
    # name: (edit, dotted field the message must name, the problem it must state)
    "typo in a section": (in_section("monitor", "sensitivty = 2"), "monitor.sensitivty", "unknown key"),
    "typo in a section name": (sub(r"^\[schedule\]$", "[schedul]"), "schedul", "unknown key"),
    "unknown top-level key": (lambda text: "colour = 'green'\n" + text, "colour", "unknown key"),
    "negative resolution": (sub(r"^resolution = .*$", "resolution = -20"), "area.resolution", "greater than 0"),
    "zero resolution": (sub(r"^resolution = .*$", "resolution = 0"), "area.resolution", "greater than 0"),
    "unknown CRS": (sub(r'^crs = ".*"$', 'crs = "EPSG:999999"'), "area.crs", "unknown CRS"),
    "CRS that is not one": (sub(r'^crs = ".*"$', 'crs = "somewhere"'), "area.crs", "unknown CRS"),
    "bounds x reversed": (
        sub(r"^bounds = \[(.*?), (.*?), (.*?), (.*?)\]$", r"bounds = [\3, \2, \1, \4]"),
        "area.bounds",
        "minx < maxx",
    ),
    "bounds y reversed": (
        sub(r"^bounds = \[(.*?), (.*?), (.*?), (.*?)\]$", r"bounds = [\1, \4, \3, \2]"),
        "area.bounds",
        "miny < maxy",
    ),
    "bounds of three numbers": (
        sub(r"^bounds = \[(.*?), (.*?), (.*?), (.*?)\]$", r"bounds = [\1, \2, \3]"),
        "area.bounds",
        "required",
    ),
    "stac-api without url": (sub(r'^kind = "static"$', 'kind = "stac-api"'), "source.url", "required"),
    "static without catalog": (sub(r"^catalog = .*\n", ""), "source.catalog", "required"),
    "unknown source kind": (sub(r'^kind = "static"$', 'kind = "ftp"'), "source.kind", "stac-api"),
    "history end before start": (sub(r"^end = 2022-12-31$", "end = 2020-06-30"), "history.end", "after history.start"),
    "history end equals start": (sub(r"^end = 2022-12-31$", "end = 2021-01-01"), "history.end", "after history.start"),
    "index needs a missing band": (sub(r'^name = "ndvi"$', 'name = "nbr"'), "source.bands", "swir22"),
    "unknown index": (sub(r'^name = "ndvi"$', 'name = "savi"'), "index.name", "ndvi"),
    "demo clock without start": (sub(r"^start = \d{4}-\d\d-\d\dT.*\n", ""), "clock.start", "required"),
    "tile_size too small": (sub(r"^tile_size = .*$", "tile_size = 8"), "area.tile_size", "greater than or equal to 16"),
    "tile_size too large": (
        sub(r"^tile_size = .*$", "tile_size = 20000"),
        "area.tile_size",
        "less than or equal to 10000",
    ),
    "missing section": (sub(r"^\[history\]\n(.*\n){2}", ""), "history", "required"),
    "wrong type": (
        sub(r"^interval_seconds = .*$", 'interval_seconds = "often"'),
        "schedule.interval_seconds",
        "number",
    ),
    "port out of range": (lambda text: text + "\n[server]\nport = 70000\n", "server.port", "65535"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_invalid_config_is_one_line_naming_the_field(demo_config: Path, case: str) -> None:
    edit, field, problem = CASES[case]
    path = edited(demo_config, edit)
    message = refused(path)
    assert message.startswith(f"invalid config {path}: "), message
    assert field in message, f"{field!r} not named in: {message}"
    assert problem in message, f"{problem!r} not stated in: {message}"


def test_unknown_crs_prints_nothing_itself(demo_config: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """GDAL's own error output would add a second line to the CLI's one-line message."""
    refused(edited(demo_config, sub(r'^crs = ".*"$', 'crs = "EPSG:999999"')))
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_several_problems_are_counted_on_the_one_line(demo_config: Path) -> None:
    path = edited(demo_config, lambda t: sub(r"^tile_size = .*$", "tile_size = 8")(in_section("monitor", "x = 1")(t)))
    message = refused(path)
    assert "more problem" in message


@pytest.mark.parametrize(("algorithm", "ua"), [("ewma", "0.019"), ("cusum", "0.067"), ("mosum", "0.081")])
def test_monitors_that_mostly_confirm_false_alerts_load_with_a_warning_naming_their_accuracy(
    demo_config: Path, caplog: pytest.LogCaptureFixture, algorithm: str, ua: str
) -> None:
    # Only the keys every monitor shares: the demo's IQR-specific ones are dropped.
    text = demo_config.read_text()
    monitor = re.search(r"^\[monitor\]\n(?:.*\n)*?(?=^\[)", text, flags=re.MULTILINE)
    assert monitor is not None
    path = demo_config.with_name(f"{algorithm}.toml")
    path.write_text(text.replace(monitor.group(0), f'[monitor]\nalgorithm = "{algorithm}"\n\n'))
    with caplog.at_level(logging.WARNING, logger="scheduler.config"):
        assert load_config(path).monitor.algorithm == algorithm
        load_config(path)  # once per process and file
    warnings = [r.getMessage() for r in caplog.records if "user's accuracy" in r.getMessage()]
    assert len(warnings) == 1 and f"of {ua} on the hard test suite" in warnings[0] and algorithm in warnings[0]


def test_the_default_monitor_loads_without_that_warning(demo_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.config"):
        load_config(demo_config)
    assert not [r for r in caplog.records if "user's accuracy" in r.getMessage()]
