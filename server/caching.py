"""HTTP caching: Cache-Control and ETag per kind of resource, and 304 answers to If-None-Match."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from importlib import metadata

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.registry import LayerRegistry

IMMUTABLE = "public, max-age=31536000, immutable"
PUBLICATION_PREFIXES = ("/layers/", "/point/")
IMMUTABLE_ASSET_SUFFIXES = (".tif", ".png")
# Bodies hashed for an ETag are buffered; larger ones (none expected besides files, which have their own) stream.
MAX_HASHED_BODY = 8 * 1024 * 1024
CACHED_STATUSES = (200, 206, 304)


def _code_version() -> str:
    """The versions that shape a rendered response: a deployment with other code gets other ETags."""
    parts = []
    for dist in ("nrt-alerts", "titiler.core", "rio-tiler"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=?")
    return ";".join(parts)


CODE_VERSION = _code_version()


class Kind(Enum):
    """How a request's response is cached."""

    VERSIONED = "versioned"
    LATEST = "latest"
    ASSET = "asset"
    SHORT = "short"


@dataclass(frozen=True)
class Policy:
    """The caching decision for one request."""

    kind: Kind
    version: str | None = None


def policy_for(path: str, version: str | None) -> Policy:
    """Classify a request by its path and its `version` query parameter."""
    # A dated publication never changes: immutable, with an ETag known from the request alone, so revalidations
    # are answered without rendering. Without a version the response follows 'latest': short-lived, and its ETag
    # includes the latest publication id, so it changes as soon as a new publication lands. Item assets are
    # written once under a new name. Everything else (catalog JSON, capabilities) is short with a body hash ETag.
    if path == "/layers":  # the list of layers and versions grows with every publication
        return Policy(Kind.LATEST)
    if path.startswith(PUBLICATION_PREFIXES):
        if version and version != "latest":
            return Policy(Kind.VERSIONED, version)
        return Policy(Kind.LATEST)
    if path.startswith("/stac/") and path.endswith(IMMUTABLE_ASSET_SUFFIXES):
        return Policy(Kind.ASSET)
    return Policy(Kind.SHORT)


def route_path(scope: Scope) -> str:
    """The request path without the root path, should a proxy setup have put it in front."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(f"{root}/") else path


def etag_of(*parts: str | bytes, weak: bool = True) -> str:
    """An ETag hashed from the parts; weak by default (equal meaning, and If-None-Match compares weakly anyway)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\0")
    tag = f'"{digest.hexdigest()[:32]}"'
    return f"W/{tag}" if weak else tag


def request_etag(request: Request, publication: str) -> str:
    """The ETag of a publication-derived response: the same request on the same publication is the same."""
    query = sorted(request.query_params.multi_items())
    return etag_of(
        CODE_VERSION,
        publication,
        str(request.base_url),
        request.url.path,
        repr(query),
        request.headers.get("accept", ""),
    )


def matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison of an If-None-Match header with an ETag."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or opaque in candidates


class CachingMiddleware:
    """Pure ASGI middleware applying the caching rules above to GET and HEAD requests."""

    def __init__(self, app: ASGIApp, registry: LayerRegistry, latest_max_age: int) -> None:
        self.app = app
        self.registry = registry
        self.short = f"public, max-age={latest_max_age}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch on the request's caching policy."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        policy = policy_for(route_path(scope), request.query_params.get("version"))
        if policy.kind is Kind.ASSET:
            await self.app(scope, receive, self._with_headers(send, IMMUTABLE, None))
        elif policy.kind is Kind.SHORT:
            await self._hashed(scope, receive, send, request)
        else:
            await self._publication(scope, receive, send, request, policy)

    async def _publication(self, scope: Scope, receive: Receive, send: Send, request: Request, policy: Policy) -> None:
        """Versioned or latest: an ETag known before rendering, so revalidations skip the work."""
        if policy.kind is Kind.VERSIONED:
            publication, cache_control = policy.version, IMMUTABLE
        else:
            latest = self.registry.index().latest
            publication, cache_control = (latest.id if latest else None), self.short
        if publication is None:  # nothing published yet: nothing stable to tag
            await self.app(scope, receive, self._with_headers(send, cache_control, None))
            return
        etag = request_etag(request, publication)
        if matches(request.headers.get("if-none-match"), etag):
            await _not_modified(send, etag, cache_control)
            return
        await self.app(scope, receive, self._with_headers(send, cache_control, etag))

    def _with_headers(self, send: Send, cache_control: str, etag: str | None) -> Send:
        """A send that adds Cache-Control (and an ETag on 200) unless the app set them."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in CACHED_STATUSES:
                headers = MutableHeaders(scope=message)
                headers.setdefault("cache-control", cache_control)
                if etag and message["status"] == 200:
                    headers.setdefault("etag", etag)
            await send(message)

        return wrapped

    async def _hashed(self, scope: Scope, receive: Receive, send: Send, request: Request) -> None:
        """Short-lived responses: buffer a 200 body without an ETag, tag it with its hash, answer 304 if it matches."""
        if_none_match = request.headers.get("if-none-match")
        hashable = scope["method"] == "GET"
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        passthrough = False

        async def wrapped(message: Message) -> None:
            nonlocal start, size, passthrough
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if message["status"] in CACHED_STATUSES:
                    headers.setdefault("cache-control", self.short)
                if not hashable or message["status"] != 200 or "etag" in headers:
                    passthrough = True
                    await send(message)
                else:
                    start = message
                return
            if passthrough or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_HASHED_BODY:  # too big to hold: send untagged
                passthrough = True
                await send(start)
                await send({**message, "body": b"".join(chunks)})
                return
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            etag = etag_of(body)
            if matches(if_none_match, etag):
                await _not_modified(send, etag, Headers(raw=start["headers"]).get("cache-control", self.short))
                return
            MutableHeaders(scope=start)["etag"] = etag
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped)


async def _not_modified(send: Send, etag: str, cache_control: str) -> None:
    """A 304 with the validators a cache needs and no body."""
    headers = MutableHeaders(raw=[])
    headers["etag"] = etag
    headers["cache-control"] = cache_control
    await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
    await send({"type": "http.response.body", "body": b""})
