"""Limits on everything that sizes a request's work, checked before any work starts, and a time budget.

Each limit is named after the query parameter it bounds; a request beyond one is answered 400 (413 for a body,
414 for a query string) with the parameter and the limit in `detail`, and the OpenAPI document shows it as the
parameter's minimum/maximum. A request that reads data gets `timeout_seconds`; the expensive ones (statistics,
pixel series) run at most `expensive_concurrency` at a time, so tiles and /healthz stay responsive meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Limits(BaseSettings):
    """The limits (env prefix NRT_ALERTS_SERVER_LIMIT_); the defaults keep one request well under 1 GB of memory."""

    model_config = SettingsConfigDict(env_prefix="NRT_ALERTS_SERVER_LIMIT_", frozen=True)

    max_image_size: int = Field(default=1024, ge=1, description="width, height and max_size of statistics (px)")
    max_tilesize: int = Field(default=1024, ge=1, description="tilesize of tiles and TileJSON (px)")
    max_buffer: float = Field(default=64, ge=0, description="buffer around a tile (px)")
    max_padding: int = Field(default=64, ge=0, description="padding around a tile (px)")
    max_zoom: int = Field(default=30, ge=0, description="tile zoom z, and minzoom/maxzoom of tilesets")
    max_histogram_bins: int = Field(default=1024, ge=1, description="histogram_bins (a count, or edges - 1)")
    max_cover_scale: int = Field(default=10, ge=1, description="cover_scale of feature statistics")
    max_repeats: int = Field(default=32, ge=1, description="values of one repeated query parameter (p, c, ...)")
    max_query_bytes: int = Field(default=8192, ge=256, description="length of the query string (bytes)")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="request body (bytes)")
    max_features: int = Field(default=16, ge=1, description="features in one GeoJSON body")
    expensive_concurrency: int = Field(default=2, ge=1, description="statistics/series requests run at once")
    expensive_queue_seconds: float = Field(default=10, ge=0, description="wait for a free slot before a 503")
    timeout_seconds: float = Field(default=30, gt=0, description="time budget of a data request (tiles, statistics)")


@dataclass(frozen=True)
class Bound:
    """The allowed range of one numeric query parameter."""

    low: float
    high: float

    def refusal(self, name: str, value: float) -> str | None:
        """Why `value` is refused (outside the range), or None."""
        if self.low <= value <= self.high:
            return None
        return f"{name}={value:g} is outside the limit: {name} must be between {self.low:g} and {self.high:g}"


def query_bounds(limits: Limits) -> dict[str, Bound]:
    """Numeric query parameters that size a response's work, with their ranges."""
    image = Bound(1, limits.max_image_size)
    zoom = Bound(0, limits.max_zoom)
    return {
        "width": image,
        "height": image,
        # 0 would mean "native resolution" to rio-tiler: never unbounded.
        "max_size": image,
        "tilesize": Bound(1, limits.max_tilesize),
        "buffer": Bound(0, limits.max_buffer),
        "padding": Bound(0, limits.max_padding),
        "minzoom": zoom,
        "maxzoom": zoom,
        "cover_scale": Bound(1, limits.max_cover_scale),
    }


# Tile paths of the TiTiler factory: /layers/{layer}/tiles/{tms}/{z}/{x}/{y}[.{format}]
TILE_PATH = re.compile(r"/tiles/[^/]+/(-?\d+)/(-?\d+)/(-?\d+)(\.\w+)?$")
# Requests that read layers get the time budget; statistics and pixel series (whole areas, many files) a slot too.
READ_PATHS = re.compile(r"/(layers|point|series|wmts)/|/wms/?$")
EXPENSIVE_PATHS = (re.compile(r"/layers/[^/]+/statistics$"), re.compile(r"/series/[^/]+$"))
# The WMS answers OGC exception reports and bounds its own WIDTH/HEIGHT/BBOX.
OWN_LIMITS = re.compile(r"/wms/?$")


def _number(value: str) -> float | None:
    """A query value as a number, or None when it is not one (FastAPI then answers the type error)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number else None  # NaN compares unequal: left to the route's validation


def histogram_refusal(value: str, limit: int) -> str | None:
    """histogram_bins is a bin count or a comma-separated list of bin edges (count + 1)."""
    parts = value.split(",")
    if len(parts) == 1:
        bins = _number(value)
        if bins is None or 1 <= bins <= limit:
            return None
        return f"histogram_bins={value} is outside the limit: histogram_bins must be between 1 and {limit}"
    if len(parts) - 1 <= limit:
        return None
    return f"histogram_bins: {len(parts)} bin edges is over the limit of {limit + 1} edges ({limit} bins)"


def query_refusal(path: str, query_string: bytes, limits: Limits) -> tuple[int, str] | None:
    """The status and reason for a request whose path or query string is beyond a limit, or None."""
    if len(query_string) > limits.max_query_bytes:
        return 414, f"the query string is {len(query_string)} bytes, over the limit of {limits.max_query_bytes}"
    if tile := TILE_PATH.search(path):
        if reason := Bound(0, limits.max_zoom).refusal("z", float(tile.group(1))):
            return 400, reason
    params = QueryParams(query_string)
    bounds = query_bounds(limits)
    names = list(dict.fromkeys(params.keys()))  # in the request's order: the first offender is named
    if ("width" in names) != ("height" in names) and "/statistics" in path:
        # One side alone takes the other from the area's aspect ratio, which a thin feature makes unbounded.
        return 400, "width and height go together (or give max_size alone)"
    for name in names:
        values = params.getlist(name)
        if len(values) > limits.max_repeats:
            return 400, f"{name}: {len(values)} values is over the limit of {limits.max_repeats}"
        for value in values:
            if name == "histogram_bins":
                reason = histogram_refusal(value, limits.max_histogram_bins)
            elif name in bounds and (number := _number(value)) is not None:
                reason = bounds[name].refusal(name, number)
            else:
                reason = None
            if reason:
                return 400, reason
    return None


def feature_count(body: bytes) -> int:
    """How many features a GeoJSON body holds (0 when it is not GeoJSON: the route answers that)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return 0
    if isinstance(obj, dict) and isinstance(obj.get("features"), list):
        return len(obj["features"])
    return 1 if isinstance(obj, dict) and obj.get("type") == "Feature" else 0


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was read."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, read until `limit` bytes; BodyTooLarge beyond (a chunked body has no length)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the app, then waits on the real channel (disconnects)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def refused(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer to a request beyond a limit."""
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


class LimitsMiddleware:
    """Pure ASGI: refuses a request beyond a limit before any route (or GDAL) sees it; passes the rest on."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the path, query and body against the limits, then call the app."""
        if scope["type"] != "http" or OWN_LIMITS.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        if found := query_refusal(scope["path"], scope.get("query_string", b""), self.limits):
            await refused(*found)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        too_large = f"the request body is over the limit of {limit} bytes"
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await refused(413, too_large)(scope, receive, send)
            return
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            await refused(413, too_large)(scope, receive, send)
            return
        if (count := feature_count(body)) > self.limits.max_features:
            reason = f"features: {count} features in one request is over the limit of {self.limits.max_features}"
            await refused(400, reason)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


class BudgetMiddleware:
    """Pure ASGI: data requests answer 503 past their time budget; expensive ones first wait for one of a few slots.

    The work itself runs in a worker thread that cannot be stopped: past the budget the client gets its 503 at
    once, and a slot stays taken until its thread ends, so abandoned work still counts against the bound.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @property
    def slots(self) -> asyncio.Semaphore:
        """The slots of the running event loop (a semaphore belongs to one loop; tests run several)."""
        loop = asyncio.get_running_loop()
        if loop not in self._slots:
            self._slots = {loop: asyncio.Semaphore(self.limits.expensive_concurrency)}
        return self._slots[loop]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a data request within the time budget (an expensive one within a slot too); pass the others on."""
        if scope["type"] != "http" or not READ_PATHS.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not any(p.search(scope["path"]) for p in EXPENSIVE_PATHS):
            await self._within_budget(scope, receive, send, None)
            return
        slots = self.slots
        try:
            await asyncio.wait_for(slots.acquire(), self.limits.expensive_queue_seconds or 0.001)
        except TimeoutError:
            count = self.limits.expensive_concurrency
            reason = f"busy: all {count} slots for statistics and series requests are taken; try again shortly"
            await refused(503, reason, {"Retry-After": "5"})(scope, receive, send)
            return
        await self._within_budget(scope, receive, send, slots)

    async def _within_budget(self, scope: Scope, receive: Receive, send: Send, slots: asyncio.Semaphore | None) -> None:
        """Run the app in a task (releasing `slots` when it ends); answer 503 if it outlasts the budget."""
        state = {"started": False, "abandoned": False}

        async def guarded_send(message: Message) -> None:
            if state["abandoned"]:
                return  # the client already has its 503
            state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        if slots is not None:
            task.add_done_callback(lambda _: slots.release())
        done, _ = await asyncio.wait({task}, timeout=self.limits.timeout_seconds)
        if task in done or state["started"]:
            await task  # finished, or already answering: let it complete (and raise what it raised)
            return
        state["abandoned"] = True
        task.add_done_callback(_consume)
        reason = f"the request exceeded its time budget of {self.limits.timeout_seconds:g} s"
        if OWN_LIMITS.search(scope["path"]):  # a WMS client reads an OGC exception report
            from server.wms.errors import WMSException, exception_response  # the WMS package imports the settings

            version = "1.1.1" if b"version=1.1.1" in scope.get("query_string", b"").lower() else "1.3.0"
            await exception_response(WMSException(None, reason, status=503), version)(scope, receive, send)
            return
        await refused(503, reason)(scope, receive, send)


def _consume(task: asyncio.Future) -> None:
    """Retrieve an abandoned task's exception so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def document_limits(app: FastAPI, limits: Limits) -> None:
    """Show the limits in the OpenAPI document: each bounded query parameter gets its minimum and maximum."""
    bounds = query_bounds(limits)
    bounds["z"] = Bound(0, limits.max_zoom)
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        for path, operations in schema.get("paths", {}).items():
            if OWN_LIMITS.search(path):
                continue
            for operation in operations.values():
                for param in operation.get("parameters", []):
                    name = param.get("name")
                    if name in bounds and param.get("in") in ("query", "path"):
                        _bound_schema(param, bounds[name])
                    elif name == "histogram_bins":
                        param["description"] = (
                            f"{param.get('description', '')}\n\nAt most {limits.max_histogram_bins} bins."
                        ).strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _bound_schema(param: dict[str, Any], bound: Bound) -> None:
    """Set minimum/maximum on a parameter's numeric schema (also inside anyOf with null)."""
    schema = param.setdefault("schema", {})
    targets = [s for s in schema.get("anyOf", []) if s.get("type") in ("integer", "number")] or [schema]
    for target in targets:
        if "exclusiveMinimum" not in target:  # TiTiler's own "greater than 0" stays as it is
            target["minimum"] = _plain(bound.low)
        target["maximum"] = _plain(bound.high)


def _plain(value: float) -> float | int:
    """Whole numbers as ints in the schema."""
    return int(value) if float(value).is_integer() else value
