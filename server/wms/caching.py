"""HTTP caching of WMS answers: immutable for dated publications, short for 'latest', ETags and 304s."""

from __future__ import annotations

import hashlib

from fastapi import Request

IMMUTABLE = "public, max-age=31536000, immutable"
# Bump when the rendering changes, so clients holding an ETag of the old drawing fetch the new one.
RENDER_REVISION = "2"


def etag(*parts: object) -> str:
    """A strong ETag from the publication version and the request in normal form."""
    digest = hashlib.sha256(repr((RENDER_REVISION, *parts)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def not_modified(request: Request, tag: str) -> bool:
    """True when If-None-Match names this ETag (or any, with *)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = {value.strip().removeprefix("W/") for value in header.split(",")}
    return "*" in candidates or tag in candidates


def cache_control(immutable: bool, latest_max_age: int) -> str:
    """Cache-Control of a map or feature answer."""
    return IMMUTABLE if immutable else f"public, max-age={latest_max_age}"
