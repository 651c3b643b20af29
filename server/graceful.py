"""uvicorn's server with a clean exit on SIGTERM: a stop asked for is not a failure."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT stop ends with code 0 instead of being re-raised.

    uvicorn re-raises the captured signal after its graceful shutdown, so `docker stop` ended the container with
    143 (killed by SIGTERM) although every request and the scheduler had finished cleanly.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Shut down gracefully on SIGTERM/SIGINT, then return normally."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
