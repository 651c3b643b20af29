"""The installed `nrt-alerts` console script: operator mistakes end with one readable line and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.demo import DemoArchive
from scheduler.demo_setup import write_demo_config
from scheduler.errors import ConfigError, NotFittedError

from conftest import RUN_STEPS, TEST_SPEC, TILE_SIZE, DemoRun, make_workspace

EXE = shutil.which("nrt-alerts")
COMMANDS = ("fit", "forward", "update", "serve")
ERROR_PREFIX = "nrt-alerts: error: "
TIMEOUT = 180


@dataclass(frozen=True)
class Outcome:
    """What one run of the command left behind."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_error_line(self) -> str:
        """Assert stderr is exactly one `nrt-alerts: error:` line and no traceback; return it."""
        assert "Traceback" not in self.stderr, f"{self.args}: traceback\n{self.stderr}"
        assert len(self.lines) == 1, f"{self.args}: {len(self.lines)} stderr lines\n{self.stderr}"
        assert self.lines[0].startswith(ERROR_PREFIX), f"{self.args}: {self.lines[0]!r}"
        return self.lines[0]


def environment(**extra: str) -> dict[str, str]:
    """The test process's environment without NRT_ALERTS_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NRT_ALERTS_")}
    return env | extra


def run_all(commands: list[list[str]], cwd: Path, env: dict[str, str] | None = None) -> list[Outcome]:
    """Run several `nrt-alerts` invocations at once (each pays the interpreter start) and wait for all."""
    assert EXE, "the nrt-alerts console script is not installed"
    procs = [
        (
            args,
            subprocess.Popen(
                [EXE, *args],
                cwd=cwd,
                env=env or environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for args in commands
    ]
    outcomes = []
    for args, proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        outcomes.append(Outcome(tuple(args), proc.returncode, out, err))
    return outcomes


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    return run_all([list(args)], cwd, env)[0]


@pytest.fixture
def workspace(tmp_path: Path, demo_archive: DemoArchive) -> Path:
    """A valid, never fitted deployment folder (nrt-alerts.toml beside a link to the demo archive)."""
    make_workspace(tmp_path / "ws", demo_archive)
    return tmp_path / "ws"


# --- bad configs: every command stops at once with exit code 2 ---------------------------------------------------


def config_with(edit: Callable[[str], str]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        good = write_demo_config(folder, TEST_SPEC, tile_size=TILE_SIZE)
        text = good.read_text()
        bad = folder / "bad.toml"
        bad.write_text(edit(text))
        assert bad.read_text() != text
        return bad

    return make


BAD_CONFIGS: dict[str, tuple[Callable[[Path], Path], dict[str, str], str]] = {
    # name: (make the config file in a folder, extra environment, what the message must name)
    "missing file": (lambda folder: folder / "absent.toml", {}, "config file not found"),
    "typo": (config_with(lambda t: t.replace("[monitor]\n", "[monitor]\nsensitivty = 2\n")), {}, "monitor.sensitivty"),
    "unknown CRS": (config_with(lambda t: re.sub(r'crs = ".*"', 'crs = "EPSG:999999"', t)), {}, "area.crs"),
    "invalid TOML": (config_with(lambda t: t + "\n[area\n"), {}, "not valid TOML"),
    "bad environment value": (
        lambda folder: write_demo_config(folder, TEST_SPEC, tile_size=TILE_SIZE),
        {"NRT_ALERTS_AREA__BOUNDS": "not-a-list"},
        "NRT_ALERTS_",
    ),
}


def check_config_refused(outcome: Outcome, named: str) -> None:
    line = outcome.one_error_line()
    assert outcome.code == ConfigError.exit_code == 2, f"{outcome.args}: exit {outcome.code}\n{outcome.stderr}"
    assert named in line, line
    assert outcome.stdout == ""


@pytest.mark.parametrize("case", ["missing file", "typo"])
def test_bad_config_stops_every_command_with_one_line(tmp_path: Path, case: str) -> None:
    make, extra_env, named = BAD_CONFIGS[case]
    config = make(tmp_path)
    outcomes = run_all([[command, "-c", str(config)] for command in COMMANDS], tmp_path, environment(**extra_env))
    assert [o.args[0] for o in outcomes] == list(COMMANDS)
    for outcome in outcomes:
        check_config_refused(outcome, named)


@pytest.mark.parametrize("case", ["unknown CRS", "invalid TOML", "bad environment value"])
def test_bad_config_is_one_line(tmp_path: Path, case: str) -> None:
    make, extra_env, named = BAD_CONFIGS[case]
    config = make(tmp_path)
    check_config_refused(run("fit", "-c", str(config), cwd=tmp_path, env=environment(**extra_env)), named)


def test_config_from_environment_variable(tmp_path: Path) -> None:
    """$NRT_ALERTS_CONFIG names the file when -c is not given."""
    absent = tmp_path / "from-env.toml"
    outcome = run("fit", cwd=tmp_path, env=environment(NRT_ALERTS_CONFIG=str(absent)))
    assert outcome.code == 2
    assert str(absent) in outcome.one_error_line()


def test_default_config_is_nrt_alerts_toml_in_the_working_directory(tmp_path: Path) -> None:
    outcome = run("update", cwd=tmp_path)
    assert outcome.code == 2
    assert "nrt-alerts.toml" in outcome.one_error_line()


# --- a valid workspace used wrongly ----------------------------------------------------------------------------


def test_update_before_fit_says_to_fit(workspace: Path) -> None:
    outcomes = run_all([["update"], ["forward", "--until", "2024-01-01", "--tile", "r000c001"]], workspace)
    for outcome in outcomes:
        line = outcome.one_error_line()
        assert outcome.code == NotFittedError.exit_code, f"{outcome.args}: exit {outcome.code}\n{outcome.stderr}"
        assert outcome.code != 0
        assert "run `nrt-alerts fit`" in line, line
    # Nothing was published from nothing.
    assert not (workspace / "output" / "stac" / "alerts" / "publications.json").exists()


def test_update_with_one_tile_unfitted_fails_that_tile_and_exits_non_zero(
    tmp_path: Path, demo_archive: DemoArchive, static_run: DemoRun
) -> None:
    """A per-tile failure is logged (the other tiles go on) and the exit status says something failed."""
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    cfg.output.state_dir.mkdir(parents=True)
    # A fitted and updated state of the first tile, from the shared run (same settings, so it is accepted).
    fitted = static_run.cfg.output.state_dir / "r000c000.nc"
    shutil.copy2(fitted, cfg.output.state_dir / fitted.name)
    outcome = run("update", "--until", RUN_STEPS[-1].date().isoformat(), cwd=tmp_path / "ws")
    assert outcome.code == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    errors = [line for line in outcome.lines if " ERROR " in line]
    assert errors and all("r000c001" in line for line in errors), outcome.stderr
    assert any("run `nrt-alerts fit`" in line for line in errors)
    assert not any("r000c000" in line for line in errors), "the fitted tile must not fail"
    assert re.search(r"update done: 2 tile\(s\), .* 1 failed", outcome.stderr), outcome.stderr


def test_until_that_is_not_a_date_is_refused(workspace: Path) -> None:
    commands = [
        ["update", "--until", "notadate"],
        ["forward", "--until", "2024-13-01"],
        ["fit", "--forward", "--until", "soon"],
    ]
    outcomes = run_all(commands, workspace)
    for outcome, value in zip(outcomes, ("notadate", "2024-13-01", "soon"), strict=True):
        line = outcome.one_error_line()
        assert outcome.code == 2
        assert "--until" in line and value in line, line


def test_fit_until_without_forward_is_refused(workspace: Path) -> None:
    line = run("fit", "--until", "2024-01-01", cwd=workspace).one_error_line()
    assert "--until goes with --forward" in line, line
    assert not (workspace / "output" / "state").exists() or not any((workspace / "output" / "state").glob("*.nc"))


def test_fit_forward_fits_fast_forwards_and_publishes_once(workspace: Path) -> None:
    """`fit --forward --until`: every tile fitted and brought up to --until in one process, one publication."""
    outcome = run("fit", "--forward", "--until", RUN_STEPS[0].date().isoformat(), cwd=workspace)
    assert outcome.code == 0, outcome.stderr
    done = re.search(r"fit done: 2 tile\(s\), (\d+) acquisition\(s\) absorbed, 0 failed", outcome.stderr)
    assert done and int(done.group(1)) > 50, outcome.stderr
    index = json.loads((workspace / "output" / "stac" / "alerts" / "publications.json").read_text())
    assert len(index["publications"]) == 1, index
    runs = json.loads((workspace / "output" / "runs.json").read_text())
    assert runs["runs"][-1]["outcome"] == "ok" and runs["runs"][-1]["acquisitions"] == int(done.group(1))


def test_unknown_tile_is_refused_listing_the_known_tiles(workspace: Path) -> None:
    outcomes = run_all([["fit", "--tile", "nope"], ["update", "--tile", "r000c000", "--tile", "nope"]], workspace)
    for outcome in outcomes:
        line = outcome.one_error_line()
        assert outcome.code == 2
        assert "nope" in line and "r000c000" in line and "r000c001" in line, line
    # Refused before any work: no state was written.
    assert not (workspace / "output" / "state").exists() or not any((workspace / "output" / "state").glob("*.nc"))


# --- usage -------------------------------------------------------------------------------------------------------


def test_help_lists_the_subcommands(tmp_path: Path) -> None:
    outcome = run("--help", cwd=tmp_path)
    assert outcome.code == 0, outcome.stderr
    choices = {name for group in re.findall(r"\{([a-z,-]+)\}", outcome.stdout) for name in group.split(",")}
    assert {"fit", "forward", "update", "serve", "demo"} <= choices, outcome.stdout
    for command in ("fit", "forward", "update", "serve", "demo"):
        assert re.search(rf"^\s+{command}\s+\S", outcome.stdout, re.MULTILINE), f"{command} has no help line"


def test_no_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    outcome = run(cwd=tmp_path)
    assert outcome.code == 2
    assert "Traceback" not in outcome.stderr
    assert outcome.stderr.startswith("usage: nrt-alerts")


def test_demo_size_too_small_is_refused_without_a_traceback(tmp_path: Path) -> None:
    outcomes = run_all([["demo", "--no-serve", "--size", "32"], ["demo", "--no-serve", "--size", "big"]], tmp_path)
    for outcome, value in zip(outcomes, ("32", "big"), strict=True):
        line = outcome.one_error_line()
        assert outcome.code == 2 and "Traceback" not in outcome.stderr
        assert "--size" in line and value in line, line
    assert not any(tmp_path.iterdir()), "refused before generating anything"
