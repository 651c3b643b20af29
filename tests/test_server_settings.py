"""`nrt-alerts serve` hands the [server] section to the server's settings whole, not field by field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.config import ENV_PREFIX, load_config
from scheduler.demo_setup import write_demo_config
from server.cli import server_settings

from conftest import TEST_SPEC, TILE_SIZE


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NRT_ALERTS_* variable of the shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def test_every_server_key_reaches_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    config = write_demo_config(folder, TEST_SPEC, tile_size=TILE_SIZE)
    monkeypatch.setenv("NRT_ALERTS_SERVER__PUBLIC_URL", "https://alerts.example.org/nrt")
    monkeypatch.setenv("NRT_ALERTS_SERVER__CORS_ORIGINS", '["https://map.example.org"]')
    monkeypatch.setenv("NRT_ALERTS_SERVER__ADMIN_TOKEN", "a-long-enough-admin-token-0123456789")
    monkeypatch.setenv("NRT_ALERTS_SERVER__ADMIN_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("NRT_ALERTS_SERVER__TRUSTED_PROXIES", '["10.0.0.0/8"]')
    monkeypatch.setenv("NRT_ALERTS_SERVER__HEALTHZ_MAX_AGE_SECONDS", "7200")
    # The standalone server's own spelling names the same keys; under `serve` the config's values win.
    monkeypatch.setenv("NRT_ALERTS_SERVER_PUBLIC_URL", "https://ignored.example.org")
    monkeypatch.setenv("NRT_ALERTS_SERVER_LATEST_MAX_AGE", "30")  # a key only the server has still applies
    cfg = load_config(config)

    settings = server_settings(cfg, healthz_max_age_seconds=5400.0)

    assert settings.stac_dir == cfg.output.stac_dir and settings.run_log == cfg.output.run_log
    assert settings.public_url == "https://alerts.example.org/nrt"
    assert settings.cors_origins == ["https://map.example.org"]
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "a-long-enough-admin-token-0123456789"
    assert settings.admin_token_file == tmp_path / "token"
    assert settings.trusted_proxies == ["10.0.0.0/8"]
    assert settings.healthz_max_age_seconds == 5400.0  # the caller's: the config's, or derived from the schedule
    assert settings.latest_max_age == 30
