"""X-Forwarded-* headers count only from trusted proxies; CORS follows the configured origins."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_admin import TOKEN

from scheduler.config import load_config
from scheduler.errors import ConfigError
from server.app import create_app
from server.proxy import ForwardedHeadersMiddleware
from server.settings import ServerSettings, parse_networks

from conftest import DemoRun, free_port, serve_app

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.example.org", "X-Forwarded-Prefix": "/alerts"}
PUBLIC = "https://maps.example.org/alerts"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def generated_urls(url: str, headers: dict[str, str]) -> dict[str, str]:
    """URLs the server writes into its answers, one per kind of document."""
    layers = httpx.get(f"{url}/layers", headers=headers)
    assert layers.status_code == 200, layers.text
    tilejson = httpx.get(f"{url}/layers/alerts/WebMercatorQuad/tilejson.json", headers=headers).json()
    collection = httpx.get(f"{url}/stac/alerts/collection.json", headers=headers).json()
    wms = httpx.get(f"{url}/wms", params={"SERVICE": "WMS", "REQUEST": "GetCapabilities"}, headers=headers)
    hrefs = sorted({el.get(XLINK_HREF) for el in ET.fromstring(wms.content).iter() if el.get(XLINK_HREF)})
    assert len(hrefs) > 5, hrefs  # service, operations and legends
    return {
        "layers": layers.json()[0]["tilejson"],
        "tilejson": tilejson["tiles"][0],
        "stac": next(link["href"] for link in collection["links"] if link["rel"] == "self"),
        **{f"wms {i}": href for i, href in enumerate(hrefs)},
    }


def assert_based_on(urls: dict[str, str], base: str) -> None:
    for kind, href in urls.items():
        assert href.startswith(f"{base}/"), f"{kind}: {href} does not start with {base}"


def test_trusted_proxy_headers_are_honoured_everywhere(static_run: DemoRun) -> None:
    app = create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir))  # default: loopback is trusted
    with serve_app(app) as url:
        assert_based_on(generated_urls(url, {}), url)
        assert_based_on(generated_urls(url, FORWARDED), PUBLIC)
        # A proxy that does not strip its prefix is served too, and links do not double it.
        prefixed = httpx.get(f"{url}/alerts/layers", headers=FORWARDED)
        assert prefixed.status_code == 200 and prefixed.json()[0]["tilejson"].startswith(f"{PUBLIC}/layers/")
        # The value the nearest proxy appended wins over what the client sent before it.
        chained = {"X-Forwarded-Host": "evil.example, maps.example.org", "X-Forwarded-Proto": "http, https"}
        assert (
            httpx.get(f"{url}/layers", headers=chained)
            .json()[0]["tilejson"]
            .startswith("https://maps.example.org/layers/")
        )
        # Malformed values are ignored, never echoed.
        odd = {"X-Forwarded-Host": "a b<", "X-Forwarded-Proto": "gopher", "X-Forwarded-Prefix": "/../x"}
        assert_based_on(generated_urls(url, odd), url)


def test_untrusted_peers_cannot_forge_forwarded_headers(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, trusted_proxies=["10.0.0.0/8", "fd00::/8"])
    with serve_app(create_app(settings)) as url:
        assert_based_on(generated_urls(url, FORWARDED), url)
        assert httpx.get(f"{url}/alerts/layers", headers=FORWARDED).status_code == 404  # no prefix either


def test_ipv6_loopback_is_trusted_by_default_and_cidrs_match(static_run: DemoRun) -> None:
    stac = static_run.cfg.output.stac_dir
    with serve_app(create_app(ServerSettings(stac_dir=stac)), host="::1") as url:
        assert_based_on(generated_urls(url, FORWARDED), PUBLIC)
    with serve_app(create_app(ServerSettings(stac_dir=stac, trusted_proxies=["127.0.0.0/8"])), host="::1") as url:
        assert_based_on(generated_urls(url, FORWARDED), url)
    with serve_app(create_app(ServerSettings(stac_dir=stac, trusted_proxies=["127.0.0.0/8"]))) as url:
        assert_based_on(generated_urls(url, FORWARDED), PUBLIC)


def test_public_url_wins_over_forwarded_headers_from_trusted_proxies(static_run: DemoRun) -> None:
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, public_url="https://tiles.example.net/base")
    with serve_app(create_app(settings)) as url:
        assert_based_on(generated_urls(url, FORWARDED), "https://tiles.example.net/base")


def test_trust_decisions() -> None:
    middleware = ForwardedHeadersMiddleware(lambda *a: None, parse_networks(["10.1.0.0/16", "::1", "192.0.2.7"]))
    assert middleware.is_trusted("10.1.200.3") and middleware.is_trusted("192.0.2.7")
    assert middleware.is_trusted("::ffff:10.1.0.9")  # an IPv4 peer on a dual-stack socket
    assert middleware.is_trusted("::1")
    for peer in ("10.2.0.1", "192.0.2.8", "127.0.0.1", "::2", "testclient", "", None):
        assert not middleware.is_trusted(peer), peer
    everyone = ForwardedHeadersMiddleware(lambda *a: None, parse_networks(["*"]))
    assert everyone.is_trusted("203.0.113.9") and everyone.is_trusted("2001:db8::1")
    assert parse_networks(["127.0.0.1"]) == (ipaddress.ip_network("127.0.0.1/32"),)
    with pytest.raises(ValueError, match="'proxy.local' is not an IP address"):
        parse_networks(["proxy.local"])


def test_config_refuses_a_bad_trusted_proxy(static_run: DemoRun, monkeypatch: pytest.MonkeyPatch) -> None:
    config = static_run.cfg.output.dir.parent / "nrt-alerts.toml"
    monkeypatch.setenv("NRT_ALERTS_SERVER__TRUSTED_PROXIES", '["10.0.0.0/8", "10.0.0.300"]')
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies: '10\.0\.0\.300' is not an IP address"):
        load_config(config)
    monkeypatch.setenv("NRT_ALERTS_SERVER__TRUSTED_PROXIES", '["10.0.0.0/8", "*"]')
    assert load_config(config).server.trusted_proxies == ["10.0.0.0/8", "*"]


@contextlib.contextmanager
def nrt_serve(config: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`nrt-alerts serve --no-scheduler` in its own process, as deployed; its stderr goes to `log`."""
    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "-c", str(config), "--no-scheduler", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "nrt-alerts serve did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_applies_forwarded_headers_only_from_configured_proxies(static_run: DemoRun, tmp_path: Path) -> None:
    """uvicorn's own proxy handling is off in `serve`: it would trust loopback whatever the config says."""
    config = static_run.cfg.output.dir.parent / "nrt-alerts.toml"
    untrusted = {"NRT_ALERTS_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8"]'}
    with nrt_serve(config, untrusted, tmp_path / "untrusted.log") as url:
        tiles = httpx.get(f"{url}/layers", headers={**FORWARDED, "X-Forwarded-For": "203.0.113.7"}).json()
        assert tiles[0]["tilejson"].startswith(f"{url}/layers/")
    # Default trust (loopback): the forwarded client is who the admin log names; the token is never logged.
    log = tmp_path / "trusted.log"
    with nrt_serve(config, {"NRT_ALERTS_SERVER__ADMIN_TOKEN": TOKEN}, log) as url:
        assert httpx.get(f"{url}/layers", headers=FORWARDED).json()[0]["tilejson"].startswith(f"{PUBLIC}/layers/")
        wrong = "wrong-token-abcdefghijklmnop"
        headers = {"Authorization": f"Bearer {wrong}", "X-Forwarded-For": "203.0.113.7"}
        response = httpx.post(f"{url}/admin/run", headers=headers)
        assert response.status_code == 401
        response = httpx.post(f"{url}/admin/run", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 503 and "no scheduler" in response.json()["detail"]
    text = log.read_text()
    assert "admin request refused (wrong token): POST /admin/run from 203.0.113.7" in text
    assert "admin request accepted: POST /admin/run from 127.0.0.1" in text
    assert wrong not in text and TOKEN not in text and "Traceback" not in text


# --- CORS --------------------------------------------------------------------------------------------------


def test_cors_allows_only_the_configured_origins(static_run: DemoRun) -> None:
    allowed, refused = "https://maps.example.org", "https://evil.example"
    settings = ServerSettings(stac_dir=static_run.cfg.output.stac_dir, cors_origins=[allowed, "http://localhost:3000"])
    with serve_app(create_app(settings)) as url:
        catalog = f"{url}/stac/catalog.json"
        ok = httpx.get(catalog, headers={"Origin": allowed})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == allowed
        assert "Origin" in ok.headers["vary"]
        other = httpx.get(catalog, headers={"Origin": refused})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Range"}
        ok = httpx.options(catalog, headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == allowed
        assert "range" in ok.headers["access-control-allow-headers"].lower()
        no = httpx.options(catalog, headers={"Origin": refused, **preflight})
        assert no.status_code == 400 and "access-control-allow-origin" not in no.headers
        # Admin calls cannot come from a web page of another origin: POST and Authorization are not allowed.
        admin = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
        assert httpx.options(f"{url}/admin/run", headers={"Origin": allowed, **admin}).status_code == 400
