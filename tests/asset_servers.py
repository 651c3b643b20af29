"""Local stand-ins for providers' protected storage: a SAS-token blob store with its token endpoint, a bearer server.

Both are threaded http.server instances on 127.0.0.1 serving files of one folder with HTTP Range, refusing any
request without a valid credential (403, or 401 for a missing bearer token) and counting what they saw.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

BLOB_HOST = "sentinel2l2a01.blob.core.windows.net"  # the SDK only signs blob-storage URLs; GDAL reaches us as proxy
CONTAINER = "sentinel2-l2"


class _Files(BaseHTTPRequestHandler):
    """Serve files of `server.root` by the path's last segment, Range included, after `server.allowed(self)`."""

    server: _Server

    def log_message(self, *args: object) -> None:
        """Quiet: the tests read the counters."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        if self.server.token_route(self):
            return
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        time.sleep(self.server.delay)
        refusal = self.server.allowed(self)
        if refusal:
            self.send_error(refusal)
            return
        path = self.server.root / urlparse(self.path).path.rsplit("/", 1)[-1]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, end, status = 0, len(data) - 1, 200
        if ranged := self.headers.get("Range"):
            first, _, last = ranged.removeprefix("bytes=").partition("-")
            start, end, status = int(first), min(int(last or end), end), 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            self.wfile.write(data[start : end + 1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    delay = 0.0

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Files)
        self.root = root
        self.refused = 0
        self.served = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def token_route(self, handler: _Files) -> bool:
        return False

    def allowed(self, handler: _Files) -> int | None:
        raise NotImplementedError

    def count(self, refusal: int | None) -> int | None:
        with self.lock:
            if refusal:
                self.refused += 1
            else:
                self.served += 1
        return refusal


class SasStore(_Server):
    """Blob storage whose files need `?se=<expiry>&sp=r&sig=<hmac>` from its token endpoint (`/token/...`).

    A token is refused `life` seconds after it was issued; the endpoint states an expiry `renew` seconds more than a
    minute ahead, as the SDK renews a token a minute before its stated expiry: each token is used `renew` seconds at
    most, then has `life - renew` seconds of validity left for the reads signed with it.
    """

    def __init__(self, root: Path, *, life: float, renew: float, subscription_key: str) -> None:
        super().__init__(root)
        self.life, self.renew, self.subscription_key = life, renew, subscription_key
        self.secret = b"storage-account-key"
        self.issued: list[tuple[str, float]] = []  # (token, enforced expiry)
        self.used: set[str] = set()  # tokens that read a file
        self.last_read = 0.0

    def sign(self, expiry: float) -> str:
        signature = hmac.new(self.secret, f"{expiry:.3f}".encode(), hashlib.sha256).hexdigest()
        return f"se={expiry:.3f}&sp=r&sig={signature}"

    def token_route(self, handler: _Files) -> bool:
        path = urlparse(handler.path).path
        if not path.startswith("/token/"):
            return False
        if handler.headers.get("Ocp-Apim-Subscription-Key") != self.subscription_key:
            handler.send_error(401)
            return True
        now = time.time()
        token = self.sign(now + self.life)
        stated = dt.datetime.fromtimestamp(now + 60 + self.renew, dt.UTC)
        with self.lock:
            self.issued.append((token, now + self.life))
        body = json.dumps({"msft:expiry": stated.isoformat(), "token": token}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    def allowed(self, handler: _Files) -> int | None:
        url = urlparse(handler.path)  # a proxy request: the absolute blob URL
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        try:
            expiry = float(query["se"])
        except (KeyError, ValueError):
            return self.count(403)  # unsigned
        if not hmac.compare_digest(self.sign(expiry), url.query) or time.time() > expiry:
            return self.count(403)  # forged or expired
        with self.lock:
            self.used.add(url.query)
            self.last_read = time.time()
        return self.count(None)


class BearerStore(_Server):
    """Files that need `Authorization: Bearer <token>`: 401 without one, 403 with another."""

    def __init__(self, root: Path, token: str) -> None:
        super().__init__(root)
        self.token = token

    def allowed(self, handler: _Files) -> int | None:
        header = handler.headers.get("Authorization")
        if header is None:
            return self.count(401)
        return self.count(None if header == f"Bearer {self.token}" else 403)


@contextlib.contextmanager
def running(server: _Server) -> Iterator[_Server]:
    """Serve in a thread; shut down after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
