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
