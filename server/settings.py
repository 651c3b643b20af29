"""Settings of the HTTP server (env prefix NRT_ALERTS_SERVER_); the CLI fills them from the deployment config."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """What the server needs: where the published catalog is, and how it is reached."""

    model_config = SettingsConfigDict(env_prefix="NRT_ALERTS_SERVER_", frozen=True)

    stac_dir: Path = Field(default=Path("data/output/stac"), description="The published STAC folder")
    public_url: str | None = Field(default=None, description="Base URL clients use, when behind a proxy")
    cors_origins: list[str] = ["*"]
    title: str = "nrt-alerts"
    latest_max_age: int = Field(default=60, description="Cache-Control max-age (s) of 'latest' responses")
    run_log: Path | None = Field(default=None, description="The run history (default: beside stac_dir)")
    healthz_max_age_seconds: float | None = Field(
        default=None, description="/healthz answers 503 when the last successful run is older than this"
    )

    @property
    def run_log_path(self) -> Path:
        """Where the scheduler writes its run history."""
        return self.run_log or self.stac_dir.parent / "runs.json"
