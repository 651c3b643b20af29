"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware

from server.auth import load_admin_token
from server.caching import CachingMiddleware
from server.errors import add_exception_handlers
from server.guard import RefusePathsMiddleware
from server.limits import BudgetMiddleware, LimitsMiddleware, document_limits
from server.proxy import ForwardedHeadersMiddleware, PublicURLMiddleware
from server.reader import guarded_reader
from server.registry import LayerRegistry
from server.routers import admin, alerts, health, pages, point, series, stac, wmts
from server.routers.admin import AdminActions
from server.routers.pages import STATIC_DIR
from server.routers.stac import catalog_files
from server.routers.tiles import layer_tiler
from server.settings import ServerSettings, parse_networks
from server.wms import router as wms_router

log = logging.getLogger(__name__)

# Started with the app and stopped with it, e.g. the in-process scheduler the CLI wires in.
Service = Callable[[], AbstractContextManager]


def create_app(
    settings: ServerSettings | None = None, services: Sequence[Service] = (), admin_actions: AdminActions | None = None
) -> FastAPI:
    """Build the app around a published STAC folder; `services` run while it runs; /admin/run calls `admin_actions`."""
    settings = settings or ServerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            for service in services:
                stack.enter_context(service())
            yield

    app = FastAPI(
        title=settings.title,
        description="Near-real-time forest disturbance alerts: XYZ tiles, point queries and a STAC catalog.",
        lifespan=lifespan,
        # /docs is served by server.routers.pages from the vendored Swagger UI (FastAPI's own loads it from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.started = dt.datetime.now(dt.UTC)
    app.state.registry = LayerRegistry(settings.stac_dir)
    app.state.reader = guarded_reader(settings.stac_dir, settings.limits.max_image_size)
    app.state.admin_token = load_admin_token(settings)
    app.state.admin_actions = admin_actions

    tiler = layer_tiler(settings.stac_dir, settings.limits.max_image_size)
    app.include_router(tiler.router, prefix="/layers/{layer}", tags=["Layers"])
    app.include_router(point.router)
    app.include_router(series.router)
    app.include_router(alerts.router)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(wmts.router)
    app.include_router(wms_router)
    # Disabled admin endpoints still answer (403 with the reason) but are not advertised.
    app.include_router(admin.router, include_in_schema=app.state.admin_token is not None)
    # Before the /stac mount: catalog JSON is served by a route (links added), every other file by the mount.
    app.include_router(stac.router)
    app.mount("/stac", catalog_files(settings.stac_dir), name="stac")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_exception_handlers(app)
    document_limits(app, settings.limits)

    # Innermost: only the work itself holds a slot of the expensive requests, never a refused or cached request.
    app.add_middleware(BudgetMiddleware, limits=settings.limits)
    # Added early, so it runs inside RefusePathsMiddleware: a 304 is never answered for a request it refuses.
    app.add_middleware(CachingMiddleware, registry=app.state.registry, latest_max_age=settings.latest_max_age)
    app.add_middleware(RefusePathsMiddleware)
    # Inside CORS, so a browser can read why a request was refused.
    app.add_middleware(LimitsMiddleware, limits=settings.limits)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Range", "If-None-Match", "Content-Type"],
        expose_headers=["Content-Range", "Accept-Ranges", "ETag", "Content-Length"],
    )
    if settings.public_url:
        app.add_middleware(PublicURLMiddleware, public_url=settings.public_url)
    # Outermost: forged forwarded headers are gone before anything reads them; a public_url is the operator's
    # word, so then no peer's forwarded headers count.
    trusted = () if settings.public_url else parse_networks(settings.trusted_proxies)
    app.add_middleware(ForwardedHeadersMiddleware, trusted=trusted)
    return app
