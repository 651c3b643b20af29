"""The service's public URL, from the request as the app rewrote it, or a reverse proxy's forwarded headers."""

from __future__ import annotations

import re

from fastapi import Request

HOST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*/?")


def _first(value: str | None) -> str | None:
    """The first hop's value of a forwarded header (proxies append theirs after a comma)."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    return first or None


def base_url(request: Request) -> str:
    """The public base URL, without a trailing slash.

    A configured `public_url` (already applied to the request by PublicURLMiddleware) wins: it is the
    operator's word. Otherwise X-Forwarded-Proto/-Host/-Prefix are honoured when well formed; malformed
    values are ignored rather than echoed into documents.
    """
    settings = request.app.state.settings
    url = request.base_url
    if settings.public_url:
        return str(url).rstrip("/")
    scheme, netloc, path = url.scheme, url.netloc, url.path
    proto = _first(request.headers.get("x-forwarded-proto"))
    if proto and proto.lower() in ("http", "https"):
        scheme = proto.lower()
    host = _first(request.headers.get("x-forwarded-host"))
    if host and HOST.fullmatch(host):
        netloc = host
    prefix = _first(request.headers.get("x-forwarded-prefix"))
    if prefix and PREFIX.fullmatch(prefix) and "//" not in prefix and ".." not in prefix.split("/"):
        path = prefix
    return f"{scheme}://{netloc}{path.rstrip('/')}"


def service_url(request: Request) -> str:
    """The /wms endpoint's public URL."""
    return f"{base_url(request)}/wms"
