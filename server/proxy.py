"""Make generated URLs (TileJSON, links) use the configured public base URL behind a reverse proxy."""

from __future__ import annotations

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
