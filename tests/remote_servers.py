"""Object storage on loopback for tests and bench/remote_reads.py: moto's S3 API and a static HTTP server.

Both are real servers on 127.0.0.1 (werkzeug, one thread per connection) behind one WSGI middleware that waits a
set latency before answering each request (what a cloud region away feels like), counts requests, bytes and the
most requests in flight at once, and can answer the next requests for a path with an error (503, 429) instead.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Traffic:
    """What a server answered: requests by method and status, body bytes, and the most requests in flight at once."""

    methods: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    paths: Counter = field(default_factory=Counter)
    bytes: int = 0
    cpu_s: float = 0.0  # the answering threads' CPU time (the app's; not werkzeug's HTTP parsing)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def requests(self) -> int:
        """All requests answered."""
        return sum(self.methods.values())

    def summary(self) -> dict[str, object]:
        """The counts as plain data (for reports)."""
        return {
            "requests": self.requests,
            "methods": dict(self.methods),
            "statuses": dict(self.statuses),
            "bytes": self.bytes,
            "server_cpu_s": round(self.cpu_s, 2),
            "max_in_flight": self.max_in_flight,
        }


class Recorder:
    """WSGI middleware: a latency before each answer, the traffic counted, errors injected on request."""

    def __init__(self, app: App, latency_s: float = 0.0) -> None:
        self.app = app
        self.latency_s = latency_s
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._faults: list[tuple[str, int]] = []

    def fail_next(self, path_part: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests whose path contains `path_part` with `status` (503, 429, ...)."""
        with self._lock:
            self._faults += [(path_part, status)] * times

    def reset(self) -> None:
        """Forget the traffic counted so far."""
        with self._lock:
            self.traffic = Traffic()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        started = time.thread_time()
        with self._lock:
            traffic = self.traffic
            traffic.in_flight += 1
            traffic.max_in_flight = max(traffic.max_in_flight, traffic.in_flight)
            fault = next((f for f in self._faults if f[0] in path), None)
            if fault is not None:
                self._faults.remove(fault)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            if fault is not None:
                body = b"injected fault"
                start_response(f"{fault[1]} Injected", [("Content-Length", str(len(body))), ("Retry-After", "0")])
                chunks: list[bytes] = [body]
                status = fault[1]
            else:
                answer: dict[str, int] = {}

                def recording_start(status_line: str, headers: list, *args: object) -> Callable:
                    answer["status"] = int(status_line.split()[0])
                    return start_response(status_line, headers, *args)

                chunks = list(self.app(environ, recording_start))
                status = answer.get("status", 0)
            sent = 0 if environ["REQUEST_METHOD"] == "HEAD" else sum(map(len, chunks))
            with self._lock:
                traffic.methods[environ["REQUEST_METHOD"]] += 1
                traffic.statuses[status] += 1
                traffic.paths[path] += 1
                traffic.bytes += sent
                traffic.cpu_s += time.thread_time() - started
            return chunks
        finally:
            with self._lock:
                traffic.in_flight -= 1


def static_files(root: Path) -> App:
    """A WSGI app serving the files under `root`: GET and HEAD, single byte ranges (206), 404 otherwise."""
    root = root.resolve()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = (root / environ.get("PATH_INFO", "").lstrip("/")).resolve()
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Length", "0")])
            return []
        if root not in path.parents or not path.is_file():
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        size = path.stat().st_size
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = [("Content-Type", kind), ("Accept-Ranges", "bytes")]
        wanted = _RANGE.match(environ.get("HTTP_RANGE", "").strip())
        start, stop, status = 0, size, "200 OK"
        if wanted:
            first, last = wanted.groups()
            if first:
                start, stop = int(first), min(size, int(last) + 1) if last else size
            else:  # the last N bytes
                start = max(0, size - int(last))
            if start >= size:
                start_response("416 Range Not Satisfiable", [("Content-Range", f"bytes */{size}")])
                return []
            status = "206 Partial Content"
            headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
        headers.append(("Content-Length", str(stop - start)))
        start_response(status, headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            return []
        with path.open("rb") as f:
            f.seek(start)
            return [f.read(stop - start)]

    return app


@dataclass
class Served:
    """A server running on loopback: its base URL and its recorder."""

    url: str
    recorder: Recorder
    server: BaseWSGIServer


class _Quiet(WSGIRequestHandler):
    """No access log line per request (thousands per run); the Recorder counts them."""

    def log_request(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(app: App, latency_s: float = 0.0) -> Iterator[Served]:
    """Serve `app` behind a Recorder on 127.0.0.1 (a free port) in a thread; stopped when the block ends."""
    recorder = Recorder(app, latency_s)
    server = make_server("127.0.0.1", 0, recorder, threaded=True, request_handler=_Quiet)
    # Many clients at once: the default backlog of 5 would refuse connections a pool opens together.
    server.socket.listen(128)
    thread = threading.Thread(target=server.serve_forever, name="remote-server", daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", recorder, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def http_files(root: Path, latency_s: float = 0.0) -> Iterator[Served]:
    """The files under `root` over HTTP with range requests."""
    with serving(static_files(root), latency_s) as served:
        yield served


# What GDAL and boto3 need to talk to moto on loopback: dummy keys, path-style URLs, plain HTTP.
S3_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_VIRTUAL_HOSTING",
    "AWS_HTTPS",
    "AWS_NO_SIGN_REQUEST",
    "AWS_PROFILE",
)


def s3_env(url: str) -> dict[str, str]:
    """Environment variables pointing GDAL (/vsis3/) and boto3 at the S3 API at `url`, with dummy credentials."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_S3_ENDPOINT": url.removeprefix("http://"),
        "AWS_ENDPOINT_URL": url,
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_HTTPS": "NO",
    }


@contextlib.contextmanager
def moto_s3(latency_s: float = 0.0) -> Iterator[Served]:
    """moto's S3 API in server mode on loopback; the process environment points GDAL and boto3 at it meanwhile."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    saved = {key: os.environ.get(key) for key in S3_ENV_KEYS}
    with serving(DomainDispatcherApplication(create_backend_app), latency_s) as served:
        for key in S3_ENV_KEYS:
            os.environ.pop(key, None)
        os.environ.update(s3_env(served.url))
        try:
            yield served
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def upload_tree(root: Path, bucket: str, suffixes: tuple[str, ...] = (".tif",)) -> int:
    """Put the files under `root` ending in `suffixes` into a new bucket (keys relative to root); how many."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket=bucket)
    count = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(suffixes):
            s3.upload_file(str(path), bucket, path.relative_to(root).as_posix())
            count += 1
    return count


def remote_catalog(archive_root: Path, target: Path, base: str) -> Path:
    """A copy of a static demo catalog (its JSON) under `target` whose assets' hrefs point at `base` + their path.

    `base` is e.g. "s3://bucket" or "http://127.0.0.1:PORT": the assets stay where `base` serves them.
    """
    archive_root = archive_root.resolve()
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(archive_root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for asset in doc.get("assets", {}).values():
            href = asset.get("href", "")
            if "://" in href and not href.startswith("file://"):
                continue
            local = (path.parent / href.removeprefix("file://")).resolve()
            if local.suffix == ".tif" and archive_root in local.parents:
                asset["href"] = f"{base.rstrip('/')}/{local.relative_to(archive_root).as_posix()}"
        out = target / path.relative_to(archive_root)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc), encoding="utf-8")
    return target / "catalog.json"
