"""Settings of the HTTP server (env prefix NRT_ALERTS_SERVER_ for the bare app); `serve` fills them from [server]."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.limits import Limits

# A reverse proxy on the same host is the usual setup; anything else must be named (as uvicorn's default).
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")


def parse_networks(values: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """IP addresses and CIDR blocks ('*' = every address) as networks; ValueError names a bad entry."""
    networks = []
    for value in values:
        if value.strip() == "*":
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR block (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


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
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the /admin endpoints (none: they are disabled)"
    )
    admin_token_file: Path | None = Field(default=None, description="A file holding the token (Docker secrets)")
    trusted_proxies: list[str] = Field(
        default=list(DEFAULT_TRUSTED_PROXIES),
        description="Peers (IPs, CIDRs, '*') whose X-Forwarded-Proto/-Host/-Prefix/-For headers are honoured",
    )

    limits: Limits = Field(default_factory=Limits, description="Limits on the work one request may ask for")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @property
    def run_log_path(self) -> Path:
        """Where the scheduler writes its run history."""
        return self.run_log or self.stac_dir.parent / "runs.json"
