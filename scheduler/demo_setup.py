"""Prepare the embedded demo: generate the archive and write a config that monitors it."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from pydantic import ValidationError

from catalog import atomic
from scheduler.config import Config, load_config
from scheduler.demo import SUITES, DemoSpec, generate_demo
from scheduler.demo.hard import TUNING_SEEDS, hard_spec
from scheduler.errors import ConfigError

log = logging.getLogger(__name__)

HISTORY = (dt.date(2021, 1, 1), dt.date(2022, 12, 31))
CLOCK_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

CONFIG_TEMPLATE = """\
# nrt-alerts configuration for the embedded demo (generated; edit freely, it is not overwritten).
[area]
crs = "EPSG:{epsg}"
resolution = {resolution}
bounds = [{minx}, {miny}, {maxx}, {maxy}]
tile_size = {tile_size}

[source]
kind = "static"
catalog = "archive/catalog.json"
collection = "{collection}"
bands = {{ red = "red", nir = "nir08", green = "green", swir16 = "swir16" }}
mask_band = "scl"
mask_valid = [4, 5, 6, 7]
scale = 0.0001
offset = -0.1
max_cloud_cover = 95

[index]
name = "ndvi"

[forest_mask]
path = "archive/forest_mask.tif"

[monitor]
algorithm = "iqr"
harmonic_order = 3
# nrt's default sensitivity 1.5 confirmed 0.6 % of stable forest pixels on this demo (small, persistent
# residual drifts); 2.5 confirmed none and still caught every clear-cut pixel with the same median lag.
sensitivity = 2.5
boundary = 3

[history]
start = {history_start}
end = {history_end}

[clock]
# The demo clock: 'now' starts on {clock_start} and runs {days_per_minute} days per minute until the archive ends.
kind = "demo"
start = {clock_start}T00:00:00Z
days_per_minute = {days_per_minute}
stop = {clock_stop}T23:59:59Z

[schedule]
interval_seconds = {interval}

[output]
dir = "output"
"""


def write_demo_config(root: Path, spec: DemoSpec, *, tile_size: int, interval_seconds: float = 20) -> Path:
    """Write root/nrt-alerts.toml monitoring the archive in root/archive (kept if it exists)."""
    config_path = root / "nrt-alerts.toml"
    if config_path.exists():
        return config_path
    text = CONFIG_TEMPLATE.format(
        epsg=spec.epsg,
        resolution=spec.resolution,
        minx=spec.origin_x,
        miny=spec.origin_y - spec.height * spec.resolution,
        maxx=spec.origin_x + spec.width * spec.resolution,
        maxy=spec.origin_y,
        tile_size=tile_size,
        collection=spec.collection_id,
        history_start=HISTORY[0].isoformat(),
        history_end=HISTORY[1].isoformat(),
        clock_start=CLOCK_START.date().isoformat(),
        clock_stop=spec.end.isoformat(),
        days_per_minute=15,
        interval=interval_seconds,
    )
    atomic.write_bytes(config_path, text.encode("utf-8"))
    log.info("wrote demo config %s", config_path)
    return config_path


def prepare_demo(root: Path, *, size: int = 256, scenario: str = "clear-cut", progress: bool = True) -> Config:
    """Generate (or reuse) the demo archive under root/archive and return the demo config."""
    root = root.resolve()
    choice = {"size": size, "scenario": scenario}
    marker = root / "demo.json"
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) != choice:
        made = json.loads(marker.read_text(encoding="utf-8"))
        raise ConfigError(
            f"{root} holds the demo for --size {made['size']} --scenario {made['scenario']}; "
            "use another --dir (or delete that folder) for a different size or scenario"
        )
    try:
        # The suite's demo shows a tuning seed: the test seeds stay unseen until accuracy is reported.
        spec = (
            hard_spec(TUNING_SEEDS[0], size)
            if scenario in SUITES
            else DemoSpec(width=size, height=size, scenario=scenario)
        )
    except ValidationError as exc:
        raise ConfigError(f"demo: {exc.errors()[0]['msg']}") from exc
    log.info(
        "demo archive: %s, %d x %d px, %s .. %s, in %s", scenario, size, size, spec.start, spec.end, root / "archive"
    )
    archive = generate_demo(root / "archive", spec, progress=progress)
    atomic.write_json(marker, choice)
    tile_size = 128 if size >= 256 else max(16, size // 2)
    return load_config(write_demo_config(root, archive.spec, tile_size=tile_size))
