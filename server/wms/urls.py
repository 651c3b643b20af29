"""The service's public URL, from the request as the proxy middlewares rewrote it."""

from __future__ import annotations

from fastapi import Request


def base_url(request: Request) -> str:
    """The public base URL, without a trailing slash.

    PublicURLMiddleware (a configured public_url) or ForwardedHeadersMiddleware (X-Forwarded-* from a trusted
    proxy) has already applied the public scheme, host and prefix to the request; the headers never get here.
    """
    return str(request.base_url).rstrip("/")


def service_url(request: Request) -> str:
    """The /wms endpoint's public URL."""
    return f"{base_url(request)}/wms"
