"""A fault-injecting HTTP proxy on loopback in front of moto's S3 server.

Every request is forwarded unchanged unless a queued fault matches it (by HTTP method):
- `Status(503)`: answer with that S3 error status, without forwarding;
- `Delay(s)`: wait `s` seconds, then forward (a slow response);
- `DropRequest()`: forward the headers and half the body, then close both connections, so
  the server sees a cut upload and the client no answer;
- `DropResponse()`: forward the whole request, send the client half of the answer, close.

Each fault fires once and runs `after_fault` (if set) right after it, so a test can look at
the bucket at the moment a client would be retrying. The proxy also records every request's
method, path and the region its signature is scoped to.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")
ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected by the test proxy</Message></Error>"
)
ERROR_CODES = {500: "InternalError", 503: "SlowDown"}


@dataclass(frozen=True)
class Status:
    status: int


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class DropRequest:
    pass


@dataclass(frozen=True)
class DropResponse:
    pass


Fault = Status | Delay | DropRequest | DropResponse


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    region: str | None  # from the SigV4 credential scope
    fault: Fault | None


@dataclass
class FaultPlan:
    upstream: str  # host:port of moto's server
    queued: list[tuple[str, Fault]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    after_fault: Callable[[Fault], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, method: str, *faults: Fault) -> None:
        """Queue faults for the next requests with this method, one request each."""
        with self.lock:
            self.queued.extend((method, fault) for fault in faults)

    def take(self, method: str, path: str, authorization: str) -> Fault | None:
        match = SCOPE.search(authorization)
        with self.lock:
            fault = None
            for i, (wanted, _) in enumerate(self.queued):
                if wanted == method:
                    fault = self.queued.pop(i)[1]
                    break
            self.seen.append(Seen(method, path, match.group(1) if match else None, fault))
        return fault

    def faults_fired(self) -> list[Fault]:
        return [s.fault for s in self.seen if s.fault is not None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for uploads
    plan: FaultPlan

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: a failing test reports the recorded requests instead."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes, *, cut_body: bool = False) -> http.client.HTTPResponse:
        upstream = http.client.HTTPConnection(self.plan.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        headers["Content-Length"] = str(len(body))
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            upstream.putheader(name, value)
        upstream.endheaders()
        if cut_body:
            upstream.send(body[: len(body) // 2])
            upstream.close()  # the server gets fewer bytes than Content-Length
            raise ConnectionAbortedError
        upstream.send(body)
        return upstream.getresponse()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, cut: bool) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(name, value)
        length = next((v for k, v in headers if k.lower() == "content-length"), None)
        self.send_header("Content-Length", length if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        if cut:
            self.close_connection = True
            self.connection.shutdown(2)

    def _handle(self) -> None:
        body = self._body()
        fault = self.plan.take(
            self.command, urlsplit(self.path).path, self.headers.get("Authorization", "")
        )
        try:
            if isinstance(fault, Status):
                error = ERROR_BODY.format(code=ERROR_CODES.get(fault.status, "InternalError"))
                self._reply(fault.status, [("Content-Type", "application/xml")],
                            error.encode(), cut=False)  # fmt: skip
                return
            if isinstance(fault, Delay):
                time.sleep(fault.seconds)
            if isinstance(fault, DropRequest):
                try:
                    self._forward(body, cut_body=True)
                except ConnectionAbortedError:
                    self.close_connection = True
                    self.connection.shutdown(2)
                return
            response = self._forward(body)
            self._reply(response.status, response.getheaders(), response.read(),
                        cut=isinstance(fault, DropResponse))  # fmt: skip
        finally:
            if fault is not None and self.plan.after_fault is not None:
                self.plan.after_fault(fault)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


@contextmanager
def fault_proxy(upstream_url: str) -> Iterator[tuple[str, FaultPlan]]:
    """A proxy for `upstream_url` on 127.0.0.1 at a free port: yields its URL and its plan."""
    plan = FaultPlan(upstream=urlsplit(upstream_url).netloc)
    handler = type("FaultHandler", (_Handler,), {"plan": plan})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", plan
    finally:
        server.shutdown()
        server.server_close()
