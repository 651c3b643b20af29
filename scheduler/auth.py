"""Access to assets that need credentials: Planetary Computer's SAS tokens, S3 keys (CDSE), bearer tokens, .netrc.

One owner for what the readers and GDAL are given. Secrets come from the environment, else `source.credentials_file`
(KEY=VALUE lines, e.g. a Docker secret), never from the config itself; they reach GDAL as config options of the read
only, items are signed as copies just before each read (a token renewed during a long fit is used by the next read),
and every message that leaves here has URL queries and known secrets replaced by `<redacted>`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import pystac
import rasterio
import requests
from odc.stac import configure_rio
from rasterio.session import AWSSession

from scheduler.config import SourceConfig
from scheduler.errors import SourceError

# Who the user has an account with, by preset prefix: the name a credential error gives.
_PROVIDERS = {
    "planetary-computer": "Planetary Computer",
    "cdse": "Copernicus Data Space Ecosystem (CDSE)",
    "usgs": "USGS",
    "earth-search": "Earth Search",
}
_KIND_NAMES = {"planetary-computer": "Planetary Computer", "s3": "S3", "bearer": "bearer-token", "netrc": ".netrc"}
_SECRETS: set[str] = set()  # every secret handed out in this process, for redacted()
_VERIFIED: set[tuple[str, str]] = set()  # (provider, digest of the GDAL options) whose credential a read accepted
_LOCK = threading.Lock()


class CredentialError(SourceError):
    """A credential is missing or refused: one line naming the provider and what to set (exit code 3)."""

    permanent = True  # not retried


def provider_name(src: SourceConfig, href: str | None = None) -> str:
    """The provider a credential belongs to: the preset's, else the asset host's."""
    if src.preset:
        return _PROVIDERS.get(src.preset.split("/", 1)[0], src.preset)
    host = urlparse(href or src.url or "").netloc
    return f"{_KIND_NAMES[src.auth]} assets at {host}" if host else _KIND_NAMES[src.auth]


def redacted(text: str) -> str:
    """`text` without URL query strings (SAS signatures) and without any secret handed out here."""
    text = re.sub(r"(\w+://[^\s?'\"]+)\?[^\s'\"]*", r"\1?<redacted>", text)
    for secret in _SECRETS:
        text = text.replace(secret, "<redacted>")
    return text


def _secret(src: SourceConfig, name: str) -> str | None:
    """A secret from the environment, else from credentials_file; remembered for redacted()."""
    value = os.environ.get(name) or _from_file(src.credentials_file).get(name)
    if value:
        with _LOCK:
            _SECRETS.add(value)
    return value or None


def _from_file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CredentialError(f"source.credentials_file {path} cannot be read: {exc.strerror}") from exc
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip().strip('"') for key, value in pairs}


def gdal_options(src: SourceConfig) -> dict[str, object]:
    """GDAL config options carrying the source's credentials (none for auth = none or planetary-computer)."""
    if src.auth == "s3":
        # The keys and endpoint go in an AWS session (s3_session): rasterio refuses them as plain options.
        endpoint = _endpoint(src)
        return {"AWS_VIRTUAL_HOSTING": "FALSE", **({"AWS_HTTPS": "YES" if endpoint.scheme == "https" else "NO"})}
    if src.auth == "bearer" and (token := _secret(src, "BEARER_TOKEN")):
        return {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}"}
    if src.auth == "netrc":
        netrc = os.environ.get("NETRC")
        return {"GDAL_HTTP_NETRC": "YES", **({"GDAL_HTTP_NETRC_FILE": netrc} if netrc else {})}
    return {}


def _endpoint(src: SourceConfig):  # noqa: ANN202 (urllib's ParseResult)
    """The S3 endpoint as a URL (https unless it says otherwise)."""
    text = src.s3_endpoint or "s3.amazonaws.com"
    return urlparse(text if "://" in text else f"https://{text}")


def s3_session(src: SourceConfig) -> dict[str, str] | None:
    """Rasterio AWSSession arguments of an S3 source (keys, endpoint); None without both keys."""
    key, secret = _secret(src, "AWS_ACCESS_KEY_ID"), _secret(src, "AWS_SECRET_ACCESS_KEY")
    if src.auth != "s3" or not key or not secret:
        return None
    return {"aws_access_key_id": key, "aws_secret_access_key": secret, "endpoint_url": _endpoint(src).netloc}


def prepared(items: list[pystac.Item], src: SourceConfig, keys: list[str]) -> list[pystac.Item]:
    """The items as read now (copies): alternate hrefs if chosen, the `keys` assets signed, credentials checked."""
    if src.asset_href == "https":
        items = [_alternate(item) for item in items]
    if src.auth == "planetary-computer":
        items = [_signed(item, src, keys) for item in items]
    elif src.auth in ("s3", "bearer"):
        _check_present(items, src, keys)
    if src.auth == "s3" and (session := s3_session(src)) is not None:
        # odc-stac's readers take an AWS session only from its process-wide configuration (its public API).
        configure_rio(aws=session, **gdal_options(src))
    return items


def _alternate(item: pystac.Item) -> pystac.Item:
    """A copy of the item whose assets point to their alternate HTTPS copies (CDSE's `alternate.https.href`)."""
    copy = item.clone()
    for asset in copy.assets.values():
        href = (asset.extra_fields.get("alternate") or {}).get("https", {}).get("href")
        if href:
            asset.href = href
    return copy


def _signed(item: pystac.Item, src: SourceConfig, keys: list[str]) -> pystac.Item:
    """A copy whose `keys` assets are signed; the SDK renews its cached token a minute before it expires."""
    if not any(key in item.assets and _remote(item.assets[key].href) for key in keys):
        return item  # local copies (tests, a mirror): nothing to sign
    try:
        import planetary_computer  # an optional dependency: only deployments that read Planetary Computer need it
    except ImportError:
        raise CredentialError(
            f"{provider_name(src)}: signing its asset URLs needs the planetary-computer package "
            "(pip install 'nrt-alerts[planetary-computer]')"
        ) from None
    key = _secret(src, "PC_SDK_SUBSCRIPTION_KEY")
    if key:
        planetary_computer.set_subscription_key(key)
    copy = item.clone()
    try:
        for name in keys:
            if name in copy.assets:
                copy.assets[name].href = planetary_computer.sign_url(copy.assets[name].href)
    except (requests.RequestException, ValueError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = f"HTTP {status}" if status else type(exc).__name__
        raise CredentialError(
            f"{provider_name(src)}: no SAS token to read item {item.id} ({why}); check PC_SDK_SUBSCRIPTION_KEY "
            "and PC_SDK_SAS_URL"
        ) from None  # the SDK's message carries the token URL
    return copy


def _check_present(items: list[pystac.Item], src: SourceConfig, keys: list[str]) -> None:
    """Refuse to read remote assets without their credential, naming the provider and what to set."""
    hrefs = [item.assets[key].href for item in items for key in keys if key in item.assets]
    remote = [href for href in hrefs if _remote(href)]
    if not remote:
        return
    if src.auth == "s3" and any(href.startswith("s3://") for href in remote):
        missing = [name for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not _secret(src, name)]
        if missing:
            raise CredentialError(
                f"{provider_name(src, remote[0])}: no S3 credentials: set {' and '.join(missing)} in the environment "
                "or in source.credentials_file"
            )
    if src.auth == "bearer" and not _secret(src, "BEARER_TOKEN"):
        raise CredentialError(
            f"{provider_name(src, remote[0])}: no bearer token: set BEARER_TOKEN in the environment or in "
            "source.credentials_file"
        )


def _remote(href: str) -> bool:
    """Whether an href is read over the network (not a file on this machine)."""
    return "://" in href and not href.startswith("file://")


def refused(exc: BaseException, src: SourceConfig, item: pystac.Item | None = None) -> CredentialError | None:
    """The credential error a failed read means (HTTP 401/403, S3 access denied), None for any other failure."""
    if src.auth == "none":
        return None
    text = str(exc)
    if not re.search(r"\b40[13]\b|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Access Denied", text):
        return None
    what = f" reading item {item.id}" if item is not None else ""
    hint = {
        "planetary-computer": "its SAS token was refused",
        "s3": "the S3 credentials were refused (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
        "bearer": "the bearer token was refused (BEARER_TOKEN)",
        "netrc": "the .netrc login was refused",
    }[src.auth]
    return CredentialError(f"{provider_name(src)}: {hint}{what}")


def verify(items: list[pystac.Item], src: SourceConfig, key: str, options: dict[str, object]) -> None:
    """Open one asset once per process and credential: a refused one is one CredentialError, not GDAL's message."""
    if src.auth == "none" or not items or key not in items[0].assets:
        return
    # Per credential: a corrected key is checked again (a digest: the set keeps no secret in memory twice).
    session = s3_session(src)
    credential = repr((sorted(options.items()), sorted((session or {}).items())))
    tag = (provider_name(src), hashlib.sha256(credential.encode()).hexdigest())
    if tag in _VERIFIED:
        return
    href = items[0].assets[key].href
    if not _remote(href):
        return
    path = href.replace("s3://", "/vsis3/", 1) if href.startswith("s3://") else f"/vsicurl/{href}"
    # Asked of the server itself: GDAL's cache may still hold what an earlier credential read.
    fresh = {**options, "CPL_VSIL_CURL_NON_CACHED": "/vsis3/:/vsicurl/"}
    heard = _Heard()  # GDAL says the HTTP status in a warning; the exception only that the file did not open
    gdal_log = logging.getLogger("rasterio._env")
    gdal_log.addHandler(heard)
    try:
        with rasterio.Env(AWSSession(**session) if session else None, **fresh), rasterio.open(path):
            pass
    except rasterio.errors.RasterioIOError as exc:
        error = refused(RuntimeError(f"{exc} {' '.join(heard.messages)}"), src, items[0])
        if error is not None:
            raise error from None  # GDAL's message names the signed URL
        return  # another failure: the read reports it with its retries
    finally:
        gdal_log.removeHandler(heard)
    with _LOCK:
        _VERIFIED.add(tag)


class _Heard(logging.Handler):
    """Collects the messages of a logger while attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
