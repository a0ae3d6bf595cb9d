"""A small fault-injecting HTTP file server on 127.0.0.1 for download tests.

Usage::

    with LoopbackServer() as server:
        server.add("/mmaction/x-abcdef12.pth", data)                      # plain file, Range supported
        server.add("/f.pth", data, faults=[Fault(drop_after=1000)])        # first GET drops after 1000 bytes
        server.add("/g.pth", data, faults=[Fault(status=500)])             # first GET answers 500, then OK
        server.add("/h.pth", data, ranges=False)                           # ignores Range, always 200
        server.add("/i.pth", data, corrupt=True)                           # serves wrong bytes (same length)
        server.add("/j.pth", data, delay=0.2)                              # sleeps before each chunk
        url = server.url("/f.pth")
        server.gets("/f.pth")                                              # logged GET requests to that path

Faults are consumed one per GET request, in order; once used up, the route serves normally. Unknown paths
answer 404. Every request is logged (method, path, Range header, status, body bytes actually sent).
The server runs in a daemon thread and is safe to use from child processes (they only make HTTP requests).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Fault", "LoopbackServer", "RequestLog", "Route"]

CHUNK = 64 * 1024


@dataclass
class Fault:
    """One misbehaviour, applied to one GET request."""

    status: int | None = None  # answer this status with a short body instead of the file
    drop_after: int | None = None  # send this many body bytes, then close the connection
    stall: float | None = None  # sleep this long before sending anything (to trigger read timeouts)


@dataclass
class Route:
    data: bytes
    faults: list[Fault] = field(default_factory=list)
    ranges: bool = True
    corrupt: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestLog:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes written


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence stderr logging
        pass

    def _record(self, status: int, sent: int) -> None:
        with self.server.lock:
            self.server.log.append(
                RequestLog(self.command, self.path.split("?", 1)[0], self.headers.get("Range"), status, sent)
            )

    def _serve(self, head_only: bool) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.arrivals.append((self.command, path))
            route = self.server.routes.get(path)
            fault = route.faults.pop(0) if (route and route.faults and not head_only) else None
        if route is None:
            self._simple(404, b"not found\n")
            return
        if fault and fault.stall:
            time.sleep(fault.stall)
        if fault and fault.status:
            self._simple(fault.status, b"injected error\n")
            return
        data = route.data
        if route.corrupt and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        start, status = 0, 200
        requested = self.headers.get("Range")
        if requested and route.ranges and requested.startswith("bytes=") and requested.endswith("-"):
            start = int(requested[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(416, 0)
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for key, value in route.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if head_only:
            self._record(status, 0)
            return
        limit = fault.drop_after if fault and fault.drop_after is not None else len(body)
        sent = 0
        try:
            while sent < min(limit, len(body)):
                if route.delay:
                    time.sleep(route.delay)
                piece = body[sent : min(sent + CHUNK, limit)]
                self.wfile.write(piece)
                sent += len(piece)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self._record(status, sent)
        if sent < len(body):  # injected drop: cut the connection mid-body
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _simple(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status, len(body) if self.command != "HEAD" else 0)

    def _counted(self, head_only: bool) -> None:
        """Serve one request, counted as in flight until its log record is written (see ``clear_log``)."""
        with self.server.lock:
            self.server.in_flight += 1
        try:
            self._serve(head_only)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1
                self.server.idle.notify_all()

    def do_GET(self) -> None:
        self._counted(head_only=False)

    def do_HEAD(self) -> None:
        self._counted(head_only=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.log: list[RequestLog] = []
        self.arrivals: list[tuple[str, str]] = []  # (method, path) when a request arrives (log: when it ends)
        self.lock = threading.Lock()
        self.in_flight = 0  # requests arrived whose log record is not written yet
        self.idle = threading.Condition(self.lock)


class LoopbackServer:
    """Context manager running the fault-injecting server on an ephemeral 127.0.0.1 port."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-http", daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(
        self,
        path: str,
        data: bytes,
        *,
        faults: Iterable[Fault] = (),
        ranges: bool = True,
        corrupt: bool = False,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve ``data`` at ``path`` (replacing any previous route); returns its URL."""
        with self._server.lock:
            self._server.routes[path] = Route(data, list(faults), ranges, corrupt, delay, dict(headers or {}))
        return self.url(path)

    def add_faults(self, path: str, *faults: Fault) -> None:
        with self._server.lock:
            self._server.routes[path].faults.extend(faults)

    def _settle(self, timeout: float = 3.0) -> None:
        """Wait until every request that has arrived is logged (a client may finish reading first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._server.lock:
                if len(self._server.log) >= len(self._server.arrivals):
                    return
            time.sleep(0.005)

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestLog]:
        """Finished requests (after waiting briefly for those still being answered), oldest first."""
        self._settle()
        with self._server.lock:
            return [
                r
                for r in self._server.log
                if (path is None or r.path == path) and (method is None or r.method == method)
            ]

    def arrived(self, path: str, method: str = "GET") -> int:
        """How many ``method`` requests for ``path`` have arrived (including ones still being answered)."""
        with self._server.lock:
            return sum(1 for m, p in self._server.arrivals if m == method and p == path)

    def gets(self, path: str | None = None) -> list[RequestLog]:
        return self.requests(path, "GET")

    def clear_log(self) -> None:
        """Forget the requests so far. Waits (up to 5 s) for requests still being answered: a client may see a
        response before the server thread has logged it, and that late record must not land in the new log."""
        with self._server.idle:
            self._server.idle.wait_for(lambda: self._server.in_flight == 0, timeout=5)
            self._server.log.clear()
            self._server.arrivals.clear()
