"""Shared helpers of the benchmarks: demo data, deployment configs, measured child processes, results."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_WORK = Path("/tmp/nrt-bench")
DEFAULT_RESULTS = BENCH / "results"

# The demo's history and monitoring periods (as scheduler/demo_setup.py sets them for `nrt-alerts demo`).
HISTORY = (dt.date(2021, 1, 1), dt.date(2022, 12, 31))
MAX_CLOUD_COVER = 95

if str(REPO) not in sys.path:  # the scripts run as `python bench/x.py`: the worktree's packages first
    sys.path.insert(0, str(REPO))


def child_env() -> dict[str, str]:
    """Environment of child processes: this worktree's code first on the path, no progress bars."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("NRT_ALERTS_LOG_LEVEL", "warning")
    return env


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"Demo data and runs (default {DEFAULT_WORK})")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Where the JSON results go")
    p.add_argument("--repeats", type=int, default=None, help="Repeats per measurement (default by mode)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="Fewer sizes and repeats (about a third of the time)")
    mode.add_argument("--smoke", action="store_true", help="Tiny area, one repeat: checks the harness only")
    return p


def mode_of(args: argparse.Namespace) -> str:
    """full, quick or smoke."""
    return "smoke" if args.smoke else "quick" if args.quick else "full"


# -- machine facts ---------------------------------------------------------------------------------------


def machine() -> dict:
    """CPU, cores, memory and software versions, recorded with every result."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 min load averages: the machine may be shared, numbers are noisy when these are high."""
    return [round(x, 2) for x in os.getloadavg()]


def now_iso() -> str:
    """UTC now, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stats(values: list[float]) -> dict:
    """Median, min, max and the raw values."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def write_result(results_dir: Path, name: str, data: dict) -> Path:
    """bench/results/<name>.json, with the machine facts and date."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    payload = {"benchmark": name, "date": now_iso(), "machine": machine(), **data}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def table(headers: list[str], rows: list[list]) -> str:
    """A plain-text table for the terminal summary."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


# -- demo data and deployments ------------------------------------------------------------------------------


def demo_spec(width: int, height: int, *, smoke: bool = False):
    """The benchmark's demo: the `nrt-alerts demo` archive at another size (shorter for smoke runs)."""
    from scheduler.demo import DemoSpec

    if smoke:  # ends soon after the history: few acquisitions to generate and absorb
        return DemoSpec(width=width, height=height, end=dt.date(2023, 5, 31), n_clearcuts=2)
    return DemoSpec(width=width, height=height)


def demo_archive(work: Path, width: int, height: int, *, smoke: bool = False):
    """Generate the demo archive once per size under the work dir (reused afterwards)."""
    from scheduler.demo import generate_demo

    name = f"demo-{width}x{height}" + ("-smoke" if smoke else "")
    return generate_demo(work / name / "archive", demo_spec(width, height, smoke=smoke))


def monitoring_dates(archive, *, max_cloud: float = MAX_CLOUD_COVER) -> list[dt.datetime]:
    """Acquisitions after the history that the source returns (cloud cover within the limit)."""
    items = json_items(archive)
    out = []
    for item in items:
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        if when.date() > HISTORY[1] and item["properties"].get("eo:cloud_cover", 0) <= max_cloud:
            out.append(when)
    return sorted(out)


def json_items(archive) -> list[dict]:
    """The archive's item JSON documents (with the file each came from)."""
    items = []
    for path in sorted((archive.root / "items").glob("*/*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["_path"] = str(path)
        items.append(doc)
    return items


def end_of_day(when: dt.datetime) -> dt.datetime:
    """The last second of that day (what `--until DATE` means to the CLI)."""
    return dt.datetime.combine(when.date(), dt.time(23, 59, 59), tzinfo=dt.UTC)


CONFIG = """\
# nrt-alerts benchmark deployment (written by bench/common.py)
[area]
crs = "EPSG:{epsg}"
resolution = {resolution}
bounds = [{minx}, {miny}, {maxx}, {maxy}]
tile_size = {tile_size}

[source]
kind = "static"
catalog = "{catalog}"
collection = "{collection}"
bands = {{ red = "red", nir = "nir08", green = "green", swir16 = "swir16" }}
mask_band = "scl"
mask_valid = [4, 5, 6, 7]
scale = 0.0001
offset = -0.1
max_cloud_cover = {max_cloud}

[index]
name = "ndvi"

[forest_mask]
path = "{forest}"

[monitor]
algorithm = "iqr"
harmonic_order = 3
sensitivity = 2.5
boundary = 3

[history]
start = {history_start}
end = {history_end}

[clock]
kind = "real"

[schedule]
interval_seconds = {interval}
misfire_grace_seconds = 30

[output]
dir = "output"
"""


def write_config(
    root: Path,
    archive,
    *,
    tile_size: int,
    catalog: Path | None = None,
    interval: float = 3600,
    extra: str = "",
) -> Path:
    """A fresh deployment folder root/ with nrt-alerts.toml monitoring the archive (or another catalog of it)."""
    spec = archive.spec
    root.mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(
        epsg=spec.epsg,
        resolution=spec.resolution,
        minx=spec.origin_x,
        miny=spec.origin_y - spec.height * spec.resolution,
        maxx=spec.origin_x + spec.width * spec.resolution,
        maxy=spec.origin_y,
        tile_size=tile_size,
        catalog=catalog or archive.catalog_path,
        collection=spec.collection_id,
        max_cloud=MAX_CLOUD_COVER,
        forest=archive.forest_mask_path,
        history_start=HISTORY[0].isoformat(),
        history_end=HISTORY[1].isoformat(),
        interval=interval,
    )
    path = root / "nrt-alerts.toml"
    path.write_text(text + (f"\n{extra}\n" if extra else ""), encoding="utf-8")
    return path


def fresh_dir(path: Path) -> Path:
    """An empty folder (whatever was there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def cli(*args: str | Path) -> list[str]:
    """The `nrt-alerts` command of this worktree."""
    return [sys.executable, "-m", "server", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path | None = None) -> None:
    """Run an nrt-alerts command to completion; its stderr tail on failure."""
    done = subprocess.run(cli(*args), env=child_env(), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nrt-alerts {' '.join(map(str, args))} failed: {done.stderr[-2000:]}")


def published_deployment(work: Path, archive, *, tile_size: int, until: dt.datetime, name: str) -> Path:
    """A deployment fitted and fast-forwarded to `until` with the CLI, made once and reused (its config path)."""
    root = work / name
    marker = root / "ready.json"
    want = {"until": until.isoformat(), "tile_size": tile_size, "archive": str(archive.root)}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return root / "nrt-alerts.toml"
    fresh_dir(root)
    config = write_config(root, archive, tile_size=tile_size)
    run_cli("fit", "-c", config)
    run_cli("forward", "-c", config, "--until", until.isoformat())
    marker.write_text(json.dumps(want))
    return config


def standard_deployment(work: Path, smoke: bool) -> tuple:
    """The one-tile deployment of limit, serving and freshness: 1000 x 1000 px (64 x 64 for smoke runs),
    fast-forwarded to the last acquisition of 2023 (or the third to last one). Returns (archive, config, dates, k):
    dates are the monitoring acquisitions, dates[k] the last one absorbed."""
    size = 64 if smoke else 1000
    archive = demo_archive(work, size, size, smoke=smoke)
    dates = monitoring_dates(archive)
    k = len(dates) - 4 if smoke else max(i for i, d in enumerate(dates) if d.year <= 2023)
    name = f"deploy-{size}" + ("-smoke" if smoke else "")
    config = published_deployment(work, archive, tile_size=size, until=end_of_day(dates[k]), name=name)
    return archive, config, dates, k


# -- measured child processes ------------------------------------------------------------------------------


@dataclass
class Measured:
    """Wall time and peak resident memory of a process tree."""

    wall_s: float
    peak_rss_mb: float


def _tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its children (dask workers, parallel tile processes)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(commands: list[list[str]], *, cwd: Path | None = None, poll_s: float = 0.02) -> Measured:
    """Run the commands at the same time (one per worker), each in its own process; poll their summed RSS."""
    started = time.perf_counter()
    # stderr to files, not pipes: a chatty child would block on a full pipe while nobody reads it.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in commands]
    procs = [
        subprocess.Popen(cmd, env=child_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=log, text=True)
        for cmd, log in zip(commands, logs, strict=True)
    ]
    handles = [psutil.Process(p.pid) for p in procs]
    peak = 0
    while any(p.poll() is None for p in procs):
        peak = max(peak, sum(_tree_rss(h) for h in handles if h.is_running()))
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    for p, cmd, log in zip(procs, commands, logs, strict=True):
        log.seek(0)
        err = log.read()
        log.close()
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err[-3000:]}")
    return Measured(wall_s=round(wall, 3), peak_rss_mb=round(peak / 2**20, 1))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until a URL answers (any status)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


# -- a source that grows, and a running server -----------------------------------------------------------------


class GrowingSource:
    """A static STAC catalog of the demo's items that grows one acquisition at a time."""

    def __init__(self, root: Path, archive) -> None:
        self.root = fresh_dir(root)
        (self.root / "items").mkdir()
        self.docs = {doc["id"]: doc for doc in json_items(archive)}
        self.ids: list[str] = []

    def add(self, docs: list[dict]) -> None:
        """Write the items, then replace catalog.json (the source rereads it when its mtime changes)."""
        for doc in docs:
            item = {k: v for k, v in doc.items() if k != "_path"}
            folder = Path(doc["_path"]).parent
            item["assets"] = {
                key: {**asset, "href": _absolute(folder, asset["href"])} for key, asset in item["assets"].items()
            }
            item["links"] = [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}]
            (self.root / "items" / f"{item['id']}.json").write_text(json.dumps(item))
            self.ids.append(item["id"])
        catalog = {
            "type": "Catalog",
            "stac_version": "1.1.0",
            "id": "bench-source",
            "description": "The benchmark's growing source catalog",
            "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
            + [{"rel": "item", "href": f"./items/{i}.json", "type": "application/geo+json"} for i in self.ids],
        }
        tmp = self.root / ".catalog.json.tmp"
        tmp.write_text(json.dumps(catalog))
        os.replace(tmp, self.root / "catalog.json")

    def item_time(self, doc: dict) -> dt.datetime:
        """An item's datetime."""
        return dt.datetime.fromisoformat(doc["properties"]["datetime"].replace("Z", "+00:00"))

    def docs_between(self, after: dt.datetime | None, until: dt.datetime) -> list[dict]:
        """The items dated in (after, until]."""
        return [
            d for d in self.docs.values() if (after is None or self.item_time(d) > after) and self.item_time(d) <= until
        ]


def _absolute(folder: Path, href: str) -> str:
    """An asset's href from its item's folder: a file path made absolute, a URL (http, s3) as it is."""
    return href if "://" in href else str((folder / href).resolve())


class PeakRSS:
    """Polls a process tree's summed resident memory in a thread between start() and stop()."""

    def __init__(self, pid: int, poll_s: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.poll_s = poll_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(self.proc))
            time.sleep(self.poll_s)

    def start(self) -> PeakRSS:
        """Start polling."""
        self.peak = _tree_rss(self.proc)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop polling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _tree_rss(self.proc))
        return round(self.peak / 2**20, 1)


@contextlib.contextmanager
def served(config: Path, cwd: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`nrt-alerts serve` of a config with its scheduler, on a free loopback port; yields (base URL, process)."""
    port = free_port()
    log = open(cwd / "serve.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        cli("serve", "-c", config, "--port", str(port)), env=child_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        yield base, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def recorded_runs(output: Path) -> int:
    """How many runs a deployment's run history holds."""
    run_log = output / "runs.json"
    return len(json.loads(run_log.read_text()).get("runs", [])) if run_log.exists() else 0


def wait_for_runs(client, base: str, n: int, timeout: float) -> list[dict]:
    """Wait until the server's run history holds at least n runs; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"{base}/status?limit=500")
        if r.status_code == 200 and len(runs := r.json().get("runs", [])) >= n:
            return runs
        time.sleep(0.02)
    raise RuntimeError(f"the scheduler recorded no run within {timeout:.0f} s")
