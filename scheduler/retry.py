"""Retry policy for the outside world: transient failures are retried with exponential backoff, others are not."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import TypeVar

import requests
from pystac_client.exceptions import APIError
from rasterio.errors import RasterioError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from scheduler.auth import redacted

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_WAIT_SECONDS = 60.0
# HTTP statuses worth asking again: rate limiting and server-side trouble.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_WORDS = ("timed out", "timeout", "connection", "refused", "reset", "temporar", "unavailable")


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Whether asking again may help: timeouts, refused/reset connections, 429/5xx, malformed JSON, read errors."""
    for cause in _chain(exc):
        if getattr(cause, "permanent", False):  # e.g. a refused credential (scheduler.auth): asking again won't help
            return False
        status = _status_of(cause)
        if status is not None:
            return status in TRANSIENT_STATUS
        if isinstance(cause, requests.ConnectionError | requests.Timeout | socket.timeout | ConnectionError):
            return True
        if isinstance(cause, json.JSONDecodeError | requests.exceptions.JSONDecodeError):
            return True  # a proxy's error page or a cut-off body: the next answer is usually whole
        if isinstance(cause, APIError):
            # pystac-client raises APIError with the body for any non-2xx answer and for undecodable JSON.
            text = str(cause).lower()
            return "json" in text or "expecting" in text or any(w in text for w in _TRANSIENT_WORDS)
        if isinstance(cause, RasterioError | OSError):
            # GDAL reports HTTP faults, truncated files and timeouts alike as read errors: worth another try.
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def cause_of(exc: BaseException) -> str:
    """One line naming what went wrong, for logs and errors: the messages of the exception and its causes."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = " ".join(str(current).replace("See previous exception for details.", "").split())
        text = text or type(current).__name__
        if not any(text in part for part in parts):
            parts.append(text)
        current = current.__cause__
    text = redacted(": ".join(parts))  # GDAL and the SDKs name signed URLs: no token goes to a log or runs.json
    return text if len(text) <= 400 else text[:397] + "..."


def after_retries(retries: int) -> str:
    """' after N retries' for messages ('' without retries)."""
    return f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""


def call_with_retries(
    func: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff_seconds: float,
    extra: dict[str, object] | None = None,
    on_retry: Callable[[int], None] | None = None,
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Call func; retry failures retry_if accepts `retries` times with exponential backoff; re-raise the last."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        cause = cause_of(exc) if exc else "unknown"
        log.warning(
            "%s failed (attempt %d of %d), retrying in %.1f s: %s",
            what,
            state.attempt_number,
            retries + 1,
            wait,
            cause,
            extra={**(extra or {}), "cause": cause},
        )
        if on_retry:
            on_retry(state.attempt_number)

    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_random_exponential(multiplier=backoff_seconds, max=max(backoff_seconds, MAX_WAIT_SECONDS)),
        retry=retry_if_exception(retry_if),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(func)
