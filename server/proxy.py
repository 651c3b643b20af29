"""Behind a reverse proxy: the configured public base URL, or forwarded headers from trusted proxies only."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send


class PublicURLMiddleware:
    """Rewrite scheme, host and root path of each request to those of `public_url`."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url {public_url!r} must be an absolute http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.netloc.encode("latin-1")
        self.server = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self.root_path = parts.path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Adjust the scope, then pass the request on."""
        if scope["type"] in ("http", "websocket"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", self.host)]
            # ASGI's path includes root_path; the proxy stripped the prefix, so put it back for routing to strip.
            path = scope["path"] if scope["path"].startswith(self.root_path + "/") else self.root_path + scope["path"]
            raw = scope.get("raw_path") or scope["path"].encode("latin-1")
            if not raw.startswith(self.root_path.encode("latin-1") + b"/"):
                raw = self.root_path.encode("latin-1") + raw
            scope = {
                **scope,
                "scheme": self.scheme,
                "server": self.server,
                "headers": headers,
                "root_path": self.root_path,
                "path": path,
                "raw_path": raw,
            }
        await self.app(scope, receive, send)


# Well-formed forwarded values only: anything else is ignored rather than echoed into documents.
HOST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*/?")
FORWARDED_HEADERS = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix", b"x-forwarded-for"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's IP address (IPv4-mapped IPv6 unwrapped), or None for a Unix socket or a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _last(value: bytes | None) -> str | None:
    """The last value of a forwarded header: the one the proxy that connected to us set or appended."""
    if value is None:
        return None
    last = value.decode("latin-1").split(",")[-1].strip()
    return last or None


class ForwardedHeadersMiddleware:
    """Honour X-Forwarded-Proto/-Host/-Prefix/-For only from trusted proxies; strip them from everyone else.

    Stripping means no code further in (links, WMS OnlineResource, caching) can read a client's forged header.
    Run uvicorn with proxy_headers=False: it would rewrite the peer address from X-Forwarded-For before this
    middleware could check who is really connected.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    def is_trusted(self, host: str | None) -> bool:
        """True when the peer's address lies in a trusted network."""
        address = _address(host) if host else None
        return address is not None and any(address in net for net in self.trusted if net.version == address.version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply the forwarded values of a trusted peer to the scope; drop the headers in every case."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        forwarded = {k: v for k, v in scope["headers"] if k in FORWARDED_HEADERS}
        if not forwarded:
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in FORWARDED_HEADERS]
        scope = {**scope, "headers": headers}
        client = scope.get("client")
        if self.is_trusted(client[0] if client else None):
            scope = self._apply(scope, forwarded)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope, forwarded: dict[bytes, bytes]) -> Scope:
        """The scope as the client addressed the proxy; malformed values are ignored, never echoed."""
        scope = dict(scope)
        proto = _last(forwarded.get(b"x-forwarded-proto"))
        if proto and proto.lower() in ("http", "https"):
            schemes = {"http": "http", "https": "https"} if scope["type"] == "http" else {"http": "ws", "https": "wss"}
            scope["scheme"] = schemes[proto.lower()]
        host = _last(forwarded.get(b"x-forwarded-host"))
        if host and HOST.fullmatch(host):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host.encode())]
        prefix = _last(forwarded.get(b"x-forwarded-prefix"))
        if prefix and PREFIX.fullmatch(prefix) and "//" not in prefix and ".." not in prefix.split("/"):
            root = prefix.rstrip("/")
            if root:
                # ASGI's path includes root_path: put the prefix the proxy stripped back in front for routing.
                raw = scope.get("raw_path") or scope["path"].encode("latin-1")
                if not scope["path"].startswith(root + "/"):
                    scope["path"] = root + scope["path"]
                    raw = root.encode("latin-1") + raw
                scope["root_path"] = root
                scope["raw_path"] = raw
        client_for = _last(forwarded.get(b"x-forwarded-for"))
        if client_for and _address(client_for.strip("[]")) is not None:
            scope["client"] = (client_for.strip("[]"), 0)
        return scope
