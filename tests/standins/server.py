"""A tiny threaded HTTP server for the stand-ins: route nothing, record everything, inject faults.

The provider logic is a plain function `Request -> Response | None` (None drops the connection without an
answer, like a crashed upstream). The server records every exchange in arrival order so tests can assert on
exactly what the SDK put on the wire. `disable_nagle_algorithm` matters: without it `http.server` adds
~40 ms to each response on a kept-alive connection (Nagle vs. delayed ACK).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import traceback
from base64 import b64decode
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs

MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request as received; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        gzipped = self.headers.get("content-encoding", "").lower() == "gzip"
        return json.loads(gzip.decompress(self.body) if gzipped else self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def fields(self) -> dict[str, str]:
        """Form fields, last value wins (for single-valued fields)."""
        return {k: v[-1] for k, v in self.form().items()}

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = b64decode(value, validate=True).decode("utf-8").partition(":")
        except ValueError:
            return None
        return (user, password) if sep else None

    def bearer_token(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return value.strip() or None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode("utf-8"), merged)


@dataclass(frozen=True)
class Exchange:
    """A request and what the stand-in answered (None: the connection was dropped)."""

    request: Request
    response: Response | None

    @property
    def status(self) -> int | None:
        return self.response.status if self.response else None

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    def json(self) -> Any:
        return self.request.json()

    def fields(self) -> dict[str, str]:
        return self.request.fields()

    def response_json(self) -> Any:
        return json.loads(self.response.body) if self.response and self.response.body else None


@dataclass(frozen=True)
class Fault:
    """An injected failure: an HTTP status (with Retry-After, provider code) or, status None, a drop."""

    status: int | None
    retry_after: float | None = None
    code: int | None = None


class FaultPlan:
    """Thread-safe queue of faults the next requests get instead of the normal answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None, code: int | None = None) -> None:
        with self._lock:
            self._queue.extend([Fault(status, retry_after, code)] * times)

    def disconnect_next(self, times: int = 1) -> None:
        with self._lock:
            self._queue.extend([Fault(None)] * times)

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


App = Callable[[Request], Response | None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs offer
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end on their own
    server: _Server

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._write(Response(411, b"Length Required"))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(Response(413, b"Payload Too Large"))
            return
        path, _, query = self.path.partition("?")
        request = Request(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        try:
            response = self.server.app(request)
        except Exception:
            # A bug in the stand-in, not a provider answer: answer 500 but remember it, so the test fails.
            self.server.errors.append(traceback.format_exc())
            response = Response(500, b"stand-in crashed; see StandinServer.errors")
        self.server.record(Exchange(request, response))
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on `received`, not on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs under a thread pool, costing 1 s retransmits

    def __init__(self, app: App) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app
        self.received: list[Exchange] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.received.append(exchange)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class StandinServer:
    """Runs `app` on 127.0.0.1:<ephemeral> in a background thread; `url` is the base URL."""

    def __init__(self, app: App) -> None:
        self._server = _Server(app)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown() waits up to one poll; the default 0.5 s adds up in tests
            name=f"standin:{port}",
            daemon=True,
        )

    @property
    def received(self) -> list[Exchange]:
        return self._server.received

    @property
    def errors(self) -> list[str]:
        """Tracebacks of exceptions the app raised (stand-in bugs)."""
        return self._server.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise AssertionError("the stand-in crashed while handling a request:\n" + self.errors[0])

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        self._thread.join(timeout=5)


class ProviderStandin:
    """What every provider stand-in shares: its server's lifecycle, what it received, injected faults.

    A subclass sets `name` and `accepted_status` and implements `handle` (the whole API as a function, usable
    without HTTP), starting with `self.faults.take()` so injected faults come before anything else.
    """

    name = "provider"
    accepted_status = 200

    def __init__(self) -> None:
        self.faults = FaultPlan()
        self._server: StandinServer | None = None

    def handle(self, request: Request) -> Response | None:
        raise NotImplementedError

    # -- what tests use -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} stand-in is not running")
        return self._server.url

    @property
    def received(self) -> list[Exchange]:
        """Every request in arrival order, with the answer it got."""
        return self._server.received if self._server else []

    @property
    def accepted(self) -> list[Exchange]:
        return [e for e in self.received if e.status == self.accepted_status]

    def disconnect_next(self, times: int = 1) -> None:
        """The next `times` requests get no answer: the connection is closed."""
        self.faults.disconnect_next(times)

    def reset(self) -> None:
        self.faults.clear()
        self.received.clear()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> Self:
        self._server = StandinServer(self.handle).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def raise_for_errors(self) -> None:
        """Fail if the stand-in itself crashed on a request (it answered 500, which looks retryable)."""
        if self._server is not None:
            self._server.raise_for_errors()


S = TypeVar("S", bound=ProviderStandin)


@contextmanager
def running(standin: S) -> Iterator[S]:
    """`standin` started for the block, stopped after it; then fail if it crashed on any request."""
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
    standin.raise_for_errors()


@contextmanager
def serving(app: App) -> Iterator[StandinServer]:
    server = StandinServer(app).start()
    try:
        yield server
    finally:
        server.stop()
    server.raise_for_errors()


def unused_local_url() -> str:
    """A base URL nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
