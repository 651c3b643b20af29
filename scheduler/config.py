"""The deployment's TOML configuration, validated with pydantic-settings; environment variables override it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import rasterio
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from rasterio.crs import CRS
from rasterio.errors import CRSError

from scheduler.errors import ConfigError
from scheduler.masks import bit_number, invalid_bits
from scheduler.presets import with_preset

ENV_PREFIX = "NRT_ALERTS_"


log = logging.getLogger(__name__)


class _Section(BaseModel):
    """A config table: unknown keys are an error, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AreaConfig(_Section):
    """The monitored area: a regular grid split into square tiles."""

    crs: str = Field(description="CRS of the output grid, e.g. EPSG:32633")
    resolution: Annotated[float, Field(gt=0)] = Field(description="Pixel size in CRS units")
    bounds: tuple[float, float, float, float] = Field(description="minx, miny, maxx, maxy in the area CRS")
    tile_size: Annotated[int, Field(ge=16, le=10000)] = Field(default=512, description="Tile edge in pixels")

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str) -> str:
        try:
            # Inside an Env GDAL's own "ERROR 1: PROJ ..." goes to logging, not straight to stderr.
            with rasterio.Env():
                CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}") from exc
        return value

    @field_validator("bounds")
    @classmethod
    def _bounds_ordered(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = value
        if not (maxx > minx and maxy > miny):
            raise ValueError("bounds must be minx < maxx and miny < maxy")
        return value


IndexName = Literal["ndvi", "nbr", "ndmi", "evi"]

# Which band roles each vegetation index reads.
INDEX_BANDS: dict[str, tuple[str, ...]] = {
    "ndvi": ("red", "nir"),
    "nbr": ("nir", "swir22"),
    "ndmi": ("nir", "swir16"),
    "evi": ("blue", "red", "nir"),
}
# CCDC's CCDC_RIRLS outlier screening tests green and SWIR reflectances.
SCREENING_BANDS = ("green", "swir16")


class SourceConfig(_Section):
    """Where imagery comes from and how to read it."""

    preset: str | None = Field(
        default=None, description="A provider's settings (scheduler/presets.py), e.g. planetary-computer/sentinel-2-l2a"
    )
    kind: Literal["stac-api", "static"] = "stac-api"
    url: str | None = Field(default=None, description="STAC API root URL (kind = stac-api)")
    catalog: Path | None = Field(default=None, description="Static catalog.json (kind = static)")
    collection: str = Field(description="Collection id, e.g. sentinel-2-l2a")
    bands: dict[str, str] = Field(
        default={"red": "red", "nir": "nir08", "green": "green", "swir16": "swir16"},
        description="Band role -> asset key",
    )
    mask_band: str | None = Field(default="scl", description="Asset key of the cloud/scene classification")
    mask_valid: list[int] = Field(default=[4, 5, 6, 7], description="Classes of mask_band that are clear")
    mask_bits_invalid: list[str | int] = Field(
        default=[],
        description="A bit-field mask_band (qa_pixel, Fmask): the bits, by name or number, that make a pixel "
        "unusable; set, it replaces mask_valid",
    )
    mask_bit_layout: Literal["landsat-qa-pixel", "hls-fmask"] = Field(
        default="landsat-qa-pixel", description="Which product's bit names mask_bits_invalid uses"
    )
    scale: float = 0.0001
    offset: float = -0.1
    nodata: float | None = 0
    max_cloud_cover: Annotated[float, Field(ge=0, le=100)] = 90.0
    timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        validation_alias=AliasChoices("timeout_seconds", "timeout_s"),
        description="Per HTTP request to the STAC API and to assets (timeout_s is still accepted)",
    )
    retries: Annotated[int, Field(ge=0, le=20)] = Field(
        default=3, description="Retries of a transient failure (timeout, refused, HTTP 429/5xx, bad JSON, read error)"
    )
    backoff_seconds: Annotated[float, Field(ge=0)] = Field(
        default=2.0, description="First wait before a retry; doubled each time (with jitter), capped at 60 s"
    )
    read_concurrency: Annotated[int, Field(ge=1, le=128)] = Field(
        default=32,
        description="Remote assets (http(s)://, s3://, ...) a tile's load reads at once, whatever the CPU count: "
        "each read waits on the network, not the CPU",
    )
    skip_acquisitions: list[str] = Field(
        default=[], description="Item ids or dates (YYYY-MM-DD) never to absorb, e.g. an asset that stays broken"
    )
    # Access to the assets (scheduler/auth.py): secrets come from the environment or credentials_file, never the config.
    auth: Literal["none", "planetary-computer", "s3", "bearer", "netrc"] = Field(
        default="none", description="How assets are read: signed (Planetary Computer), S3 keys, a bearer token, .netrc"
    )
    credentials_file: Path | None = Field(
        default=None,
        description="KEY=VALUE lines (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, BEARER_TOKEN, PC_SDK_SUBSCRIPTION_KEY) "
        "read where the environment has none, e.g. a Docker secret",
    )
    s3_endpoint: str | None = Field(default=None, description="S3 endpoint, e.g. eodata.dataspace.copernicus.eu")
    asset_href: Literal["href", "https"] = Field(
        default="href", description="https: read each asset's alternate HTTPS href (CDSE) instead of its href"
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return with_preset(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _bits_known(self) -> SourceConfig:
        for bit in self.mask_bits_invalid:
            bit_number(self.mask_bit_layout, bit)  # ValueError naming the known bits
        if self.mask_bits_invalid and "mask_valid" in self.model_fields_set:
            raise ValueError("mask_valid (classes) and mask_bits_invalid (bits) exclude each other: set one")
        return self

    @property
    def mask_invalid(self) -> int:
        """The bits of mask_bits_invalid as one integer (0: the mask band holds classes)."""
        return invalid_bits(self.mask_bit_layout, self.mask_bits_invalid)

    @model_validator(mode="after")
    def _kind_has_location(self) -> SourceConfig:
        if self.kind == "stac-api" and not self.url:
            raise ValueError("source.url is required when source.kind = 'stac-api'")
        if self.kind == "static" and self.catalog is None:
            raise ValueError("source.catalog is required when source.kind = 'static'")
        return self


class IndexConfig(_Section):
    """The vegetation index monitored."""

    name: IndexName = "ndvi"


class ForestMaskConfig(_Section):
    """Optional GeoTIFF of pixels to monitor; without it every pixel is monitored."""

    path: Path | None = None
    forest_values: list[int] = Field(default=[1], description="Mask values that mean forest")


FitMethod = Literal["OLS", "RIRLS", "ROC", "CCDC-stable"]
Screening = Literal["none", "Shewhart", "CCDC_RIRLS"]


class _NrtMonitorConfig(_Section):
    """Settings every nrt monitor shares."""

    harmonic_order: Annotated[int, Field(ge=0, le=5)] = 2
    trend: bool = True
    fit_method: FitMethod = "OLS"
    screen_outliers: Screening = "none"
    high_confidence: Annotated[float, Field(gt=0)] = Field(
        default=8.0,
        description="Alerts whose mean |residual| / the pixel's residual spread reaches this are high confidence",
    )

    @model_validator(mode="after")
    def _fit_compatible(self) -> _NrtMonitorConfig:
        if self.fit_method == "CCDC-stable" and not self.trend:
            raise ValueError("fit_method 'CCDC-stable' needs trend = true")
        return self


class IQRConfig(_NrtMonitorConfig):
    """nrt's IQR monitor: an observation is an outlier outside the residuals' IQR fences."""

    algorithm: Literal["iqr"] = "iqr"
    harmonic_order: Annotated[int, Field(ge=0, le=5)] = 3
    # nrt's default is 1.5: on the demo that confirmed false alerts on 0.5-1 % of stable forest (UA 0.83 on
    # clear-cuts); 2.5 kept every clear-cut, fire and logging gap with the same lag (docs/accuracy.md).
    sensitivity: Annotated[float, Field(gt=0, le=10)] = 2.5
    boundary: Annotated[int, Field(ge=1, le=50)] = 3


class CCDCConfig(_NrtMonitorConfig):
    """nrt's CCDC monitor: `boundary` consecutive observations beyond sensitivity x RMSE."""

    algorithm: Literal["ccdc"] = "ccdc"
    sensitivity: Annotated[float, Field(gt=0, le=20)] = 3.0
    boundary: Annotated[int, Field(ge=1, le=50)] = 3
    fit_method: FitMethod = "CCDC-stable"
    # nrt's default screening, CCDC_RIRLS (green + SWIR cloud/shadow test), took 50-100 s at 200 x 200 px here:
    # offered, not the default.
    screen_outliers: Screening = "none"


class EWMAConfig(_NrtMonitorConfig):
    """nrt's EWMA monitor: an exponentially weighted mean of residuals against sensitivity x sigma limits."""

    algorithm: Literal["ewma"] = "ewma"
    sensitivity: Annotated[float, Field(gt=0, le=20)] = 5.0
    lambda_: Annotated[float, Field(gt=0, le=1)] = 0.3
    # nrt's default 10 drops every residual beyond 10 sigma before it reaches the process: a clear-cut (about
    # 30 sigma of NDVI) is exactly such a residual and is never detected (nrt issue #4). None disables it.
    threshold_outlier: Annotated[float, Field(gt=0)] | None = None
    screen_outliers: Screening = "Shewhart"
    shewhart_l: Annotated[float, Field(gt=0)] = 5.0


class CuSumConfig(_NrtMonitorConfig):
    """nrt's CuSum monitor (OLS-CUSUM); sensitivity is the test's significance level."""

    algorithm: Literal["cusum"] = "cusum"
    sensitivity: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    fit_method: FitMethod = "ROC"
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = Field(default=0.05, description="ROC stable-history level")


class MoSumConfig(_NrtMonitorConfig):
    """nrt's MoSum monitor (OLS-MOSUM); sensitivity is the significance level of its critical-value table."""

    algorithm: Literal["mosum"] = "mosum"
    # nrt interpolates critical values tabulated for 0.001 <= alpha <= 0.05 and h in 0.25, 0.5, 1 only.
    sensitivity: Annotated[float, Field(ge=0.001, le=0.05)] = 0.05
    h: Literal[0.25, 0.5, 1.0] = 0.25
    fit_method: FitMethod = "ROC"
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = Field(default=0.05, description="ROC stable-history level")


# [monitor] keys that change what is reported from a state, not the state: changing one republishes, never refits.
REPORT_ONLY = frozenset({"high_confidence", "halo_ratio"})


class CCDCNRTConfig(_Section):
    """SEPAL's CCDC-based near-real-time alerts, made incremental (scheduler/ccdcnrt.py)."""

    algorithm: Literal["ccdc-nrt"] = "ccdc-nrt"
    harmonic_order: Annotated[int, Field(ge=0, le=5)] = 3
    trend: bool = True
    # The defaults below were chosen on the hard suite's tuning seeds (bench/tune_suite.py, docs/accuracy.md); SEPAL's
    # own are min_confidence 5, calibration_days 91 and every mechanism off.
    min_confidence: Annotated[float, Field(gt=0)] = 8.0
    window: Annotated[int, Field(ge=1, le=8)] = Field(default=3, description="N of the M-of-N windows")
    min_changes: Annotated[int, Field(ge=1, le=8)] = Field(default=3, description="M of the M-of-N windows")
    calibration_days: Annotated[int, Field(ge=0, le=730)] = 0
    monitoring_days: Annotated[int, Field(ge=1, le=730)] = 61
    must_be_confirmed_in_monitoring: bool = True
    must_be_stable_before_change: bool = True
    armed_by_history: bool = Field(
        default=True, description="A pixel stable at the end of its history may be alerted from the first day"
    )
    history_outliers: Annotated[float, Field(ge=0, le=100)] = Field(
        default=4.0, description="Refit without history observations beyond this many robust sigmas (0: off)"
    )
    regional_block: Annotated[int, Field(ge=0, le=1024)] = Field(
        default=64, description="Subtract the median change of unalerted pixels per block this wide (px; 0: off)"
    )
    outlier_neighbours: Annotated[int, Field(ge=0, le=8)] = Field(
        default=2, description="An alert's first change is a passing cloud when this many neighbours had it (0: off)"
    )
    halo_ratio: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.5, description="Not an alert: a change below this share of an alerted neighbour's (blur; 0: off)"
    )
    must_stay_changed: bool = True
    direction: Literal["both", "decrease", "increase"] = "both"
    high_confidence: Annotated[float, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _m_of_n(self) -> CCDCNRTConfig:
        if self.min_changes > self.window:
            raise ValueError("min_changes (M) cannot exceed window (N)")
        return self


MonitorConfig = Annotated[
    IQRConfig | CCDCConfig | EWMAConfig | CuSumConfig | MoSumConfig | CCDCNRTConfig,
    Field(discriminator="algorithm"),
]


def parse_monitor(data: dict[str, Any]) -> MonitorConfig:
    """Validate a [monitor] table given as a dict (sweeps build many); raises pydantic.ValidationError."""
    return TypeAdapter(MonitorConfig).validate_python(data)


class HistoryConfig(_Section):
    """The stable period the monitor is fitted on."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> HistoryConfig:
        if self.end <= self.start:
            raise ValueError("history.end must be after history.start")
        return self


class ClockConfig(_Section):
    """What 'now' is: real time, or an accelerated demo clock."""

    kind: Literal["real", "demo"] = "real"
    start: dt.datetime | None = Field(default=None, description="Demo: the date 'now' is when the server starts")
    days_per_minute: Annotated[float, Field(gt=0)] = Field(
        default=15.0, description="Demo: simulated days per wall-clock minute"
    )
    stop: dt.datetime | None = Field(default=None, description="Demo: the clock stops here")

    @model_validator(mode="after")
    def _demo_has_start(self) -> ClockConfig:
        if self.kind == "demo" and self.start is None:
            raise ValueError("clock.start is required when clock.kind = 'demo'")
        return self


class ScheduleConfig(_Section):
    """How often the in-process scheduler looks for new acquisitions."""

    enabled: bool = True
    interval_seconds: Annotated[float, Field(ge=1)] = 3600.0
    misfire_grace_seconds: Annotated[float, Field(ge=1)] = 300.0


class OutputConfig(_Section):
    """Where states, reports and the STAC catalog of outputs are written."""

    dir: Path = Path("data/output")
    collection_title: str = "Forest disturbance alerts"
    keep_all_days: Annotated[int, Field(ge=0)] = Field(
        default=90, description="Retention: every publication with data at most this many days older than the latest"
    )
    keep_weekly_days: Annotated[int, Field(ge=0)] = Field(
        default=365, description="Retention: then the newest publication of each week, up to this many days"
    )
    keep_monthly: bool = Field(default=True, description="Retention: then the newest publication of each month")
    prune: bool = Field(default=True, description="Apply the retention after every update run that published")
    min_free_mb: Annotated[float, Field(ge=0)] = Field(
        default=100, description="A run starts only with this much free space on the output's disk (MB)"
    )
    state_generations: Annotated[int, Field(ge=0)] = Field(
        default=3, description="Earlier state files kept per tile for `nrt-alerts restore` (0: none)"
    )

    @property
    def state_dir(self) -> Path:
        """Folder of the per-tile monitor states."""
        return self.dir / "state"

    @property
    def stac_dir(self) -> Path:
        """Folder of the published STAC catalog and its COGs."""
        return self.dir / "stac"

    @property
    def run_log(self) -> Path:
        """The run history (outside the served STAC folder)."""
        return self.dir / "runs.json"


class ComputeConfig(_Section):
    """How tiles are run: one after another in this process, or as tasks on a dask.distributed cluster."""

    executor: Literal["auto", "dask", "serial"] = Field(
        default="auto",
        description="auto: dask when scheduler_address is set, else serial; serial: tiles one after another in this "
        "process, each on `threads` threads; dask: tiles as tasks on the cluster (a LocalCluster without an address)",
    )
    scheduler_address: str | None = Field(default=None, description="An existing cluster, e.g. tcp://host:8786")
    n_workers: Annotated[int, Field(ge=1, le=1024)] = 2
    threads_per_worker: Annotated[int, Field(ge=1, le=64)] = 1
    memory_limit: str = Field(default="auto", description="Per LocalCluster worker, e.g. '4GiB' (dask syntax)")
    processes: bool = Field(
        default=True, description="LocalCluster workers are processes (True) or threads (debugging: HDF5 and GDAL)"
    )
    batch_acquisitions: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=16, description="Acquisitions loaded at once by an update"
    )
    fit_block_rows: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=256, description="At most this many rows of a tile are fitted at once"
    )
    fit_block_values: Annotated[int, Field(ge=1)] = Field(
        default=2_000_000,
        description="Fewer rows when rows x width x history dates exceeds this: nrt's fit takes ~40-60 bytes per "
        "value, so 2 M values keep it near 100 MB whatever the history's length (and fit no slower: fewer page faults)",
    )
    load_block_values: Annotated[int, Field(ge=1)] = Field(
        default=48_000_000,
        description="A fit reads up to this many values (rows x width x history dates) at once and fits them "
        "fit_block_values at a time; the load holds them as float32 (48 M: 192 MB), and each load opens every asset "
        "of every date once more (~3 ms each): a 512 x 512 px tile of 139 dates loads at once, peak RSS ~650 MB",
    )
    threads: Annotated[int, Field(ge=0, le=256)] = Field(
        default=0,
        description="Threads the tiles of a run in this process share (0: every CPU; threads_per_worker on dask "
        "workers)",
    )
    tiles_at_once: Annotated[int, Field(ge=0, le=256)] = Field(
        default=0,
        description="Tiles run side by side in this process, splitting `threads` between them (0: one per thread, "
        "at most the run's tiles). Each holds its own load, so peak memory grows with it",
    )

    def tile_threads(self) -> int:
        """The threads available here (`threads`, or every CPU this process may use)."""
        if self.threads:
            return self.threads
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    def tile_plan(self, tiles: int) -> tuple[int, int]:
        """How many of a run's `tiles` run side by side here, and the threads each of them uses."""
        total = self.tile_threads()
        # One tile per thread keeps both cores busy where a tile alone cannot: its reads and Python hold the GIL.
        side_by_side = max(1, min(self.tiles_at_once or total, tiles))
        return side_by_side, max(1, total // side_by_side)


class ServerConfig(_Section):
    """The HTTP server."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_url: str | None = Field(default=None, description="Public base URL behind a proxy")
    cors_origins: list[str] = ["*"]
    healthz_max_age_seconds: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="/healthz answers 503 when the last successful run is older (default: 3 x the schedule "
        "interval while the scheduler runs)",
    )
    # repr=False: the token never shows in a printed or logged config.
    admin_token: str | None = Field(default=None, repr=False, description="Bearer token of /admin (none: disabled)")
    admin_token_file: Path | None = Field(default=None, description="A file holding the admin token (Docker secret)")
    trusted_proxies: list[str] = Field(
        default=["127.0.0.1", "::1"], description="Peers whose X-Forwarded-* headers are honoured: IPs, CIDRs, '*'"
    )
    access_log: bool = Field(default=True, description="One log line per request (method, path, status)")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry.strip() != "*":
                try:
                    ipaddress.ip_network(entry.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address or CIDR block (e.g. 10.0.0.0/8)") from None
        return value


class LoggingConfig(_Section):
    """How log lines look."""

    format: Literal["text", "json"] = "text"


class Config(BaseSettings):
    """The whole deployment, one TOML file; NRT_ALERTS_<SECTION>__<KEY> environment variables win."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True)

    area: AreaConfig
    source: SourceConfig
    index: IndexConfig = IndexConfig()
    forest_mask: ForestMaskConfig = ForestMaskConfig()
    monitor: MonitorConfig = CCDCNRTConfig()
    history: HistoryConfig
    clock: ClockConfig = ClockConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    output: OutputConfig = OutputConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    compute: ComputeConfig = ComputeConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the file's values (passed as init kwargs)."""
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _bands_for_index(self) -> Config:
        needed = list(INDEX_BANDS[self.index.name])
        if getattr(self.monitor, "screen_outliers", None) == "CCDC_RIRLS":
            needed += SCREENING_BANDS
        missing = [role for role in needed if role not in self.source.bands]
        if missing:
            raise ValueError(f"index {self.index.name!r} needs source.bands entries for {', '.join(missing)}")
        return self

    def resolve_paths(self, base: Path) -> Config:
        """Make relative paths absolute against the config file's folder."""

        def absolute(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else (base / path).resolve()

        updates: dict[str, Any] = {}
        if cat := absolute(self.source.catalog):
            updates["source"] = self.source.model_copy(update={"catalog": cat})
        if mask := absolute(self.forest_mask.path):
            updates["forest_mask"] = self.forest_mask.model_copy(update={"path": mask})
        if out := absolute(self.output.dir):
            updates["output"] = self.output.model_copy(update={"dir": out})
        if token_file := absolute(self.server.admin_token_file):
            updates["server"] = self.server.model_copy(update={"admin_token_file": token_file})
        return self.model_copy(update=updates)


def _one_line(exc: ValidationError, origin: str) -> str:
    """Summarise a validation error as one line naming the field and the problem."""
    errors = exc.errors()
    first = errors[0]
    loc = list(first["loc"])
    if len(loc) > 2 and loc[0] == "monitor":
        loc.pop(1)  # the discriminated union's tag (the algorithm name) is not a key the user wrote
    where = ".".join(str(part) for part in loc) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"invalid config {origin}: {where}: {message}{more}"


# Monitors whose defaults confirm mostly false alerts on the hard suite's test seeds (docs/accuracy.md, 256 px,
# seeds 101-105): user's accuracy of their confirmed alerts on clear-cuts and fires. A config choosing one loads
# with a warning naming it; a monitor leaves this table when its defaults reach UA 0.9 there.
LOW_ACCURACY_MONITORS = {"ewma": 0.019, "cusum": 0.067, "mosum": 0.081}
_warned: set[tuple[str, str]] = set()


def _warn_low_accuracy(config: Config, path: Path) -> None:
    """Warn once per process and config file when its monitor is one of LOW_ACCURACY_MONITORS."""
    algorithm = config.monitor.algorithm
    ua = LOW_ACCURACY_MONITORS.get(algorithm)
    if ua is None or (str(path), algorithm) in _warned:
        return
    _warned.add((str(path), algorithm))
    log.warning(
        "%s: monitor %r with its defaults measured a user's accuracy of %.3f on the hard test suite "
        "(docs/accuracy.md): most of its confirmed alerts were false; for alerts use ccdc-nrt (UA 0.986 there)",
        path,
        algorithm,
        ua,
    )


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a config file; raise ConfigError with one readable line."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid config {path}: not valid TOML: {exc}") from exc
    try:
        config = Config(**data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, str(path))) from exc
    except SettingsError as exc:  # an NRT_ALERTS_* variable that does not parse (e.g. a list that is not JSON)
        raise ConfigError(f"invalid config from the environment ({ENV_PREFIX}*): {exc}") from exc
    _warn_low_accuracy(config, path)
    return config.resolve_paths(path.resolve().parent)
