"""HTTP caching of WMS answers: immutable for dated publications, short for 'latest', ETags and 304s."""

from __future__ import annotations

from fastapi import Request

from server.caching import IMMUTABLE, etag_of, matches

# Bump when the rendering changes, so clients holding an ETag of the old drawing fetch the new one.
RENDER_REVISION = "2"


def etag(*parts: object) -> str:
    """A strong ETag from the publication version and the request in normal form."""
    return etag_of(RENDER_REVISION, repr(parts), weak=False)


def not_modified(request: Request, tag: str) -> bool:
    """True when If-None-Match names this ETag (or any, with *)."""
    return matches(request.headers.get("if-none-match"), tag)


def cache_control(immutable: bool, latest_max_age: int) -> str:
    """Cache-Control of a map or feature answer."""
    return IMMUTABLE if immutable else f"public, max-age={latest_max_age}"
