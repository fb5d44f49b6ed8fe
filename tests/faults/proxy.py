"""A counting, fault-injecting HTTP proxy in front of an S3 server, in its own process.

Clients are configured with the proxy's URL as their S3 endpoint. The proxy forwards every request verbatim
(method, path, query, headers including ``Host`` and the SigV4 ``Authorization``, body) to the upstream server
and the answer back, counts each request by kind and bytes, and injects faults on a deterministic schedule.

It runs as a separate process, not in the test's threads: some delta-rs calls block while holding the GIL,
which would starve a proxy living in the same interpreter (see ``tests/conftest.py``).

Kinds: ``GET`` (an object read, ranged or not), ``PUT`` (object or part upload, copy), ``LIST`` (a GET on a
bucket root: ListObjects/V2), ``DELETE`` (DeleteObject, and the multi-object ``POST ?delete``, whose keys are
counted in ``deleted_keys``), ``HEAD``, ``POST`` (multipart create/complete), ``OTHER``.

Faults (``FaultPlan.fault``):

* ``slowdown``: answer ``503 SlowDown`` (S3's XML error) without forwarding;
* ``error500``: answer ``500 InternalError`` without forwarding;
* ``reset``: forward, send the headers and half the body, then reset the connection (RST);
* ``slow``: forward, then wait ``delay`` seconds before answering;
* ``lost_put``: forward a PUT (the server stores it), then reset the connection without answering;
* ``error200``: answer ``200`` with S3's XML error in the body (``InternalError``), without forwarding: S3 may
  answer so once it has started a response;
* ``cut_xml``: forward, then answer the status with the first half of the body as a complete HTTP answer (its
  ``Content-Length`` the half's): XML that ends mid-element.

A plan hits every ``every``-th eligible request (eligible: its kind is in ``kinds``), starting with the
``first``-th, at most ``limit`` times. The test process controls the proxy over HTTP under ``/__faults__/``
(no S3 bucket name can start with ``_``): ``POST /__faults__/plan`` (JSON plan, or ``{}`` for none),
``POST /__faults__/reset`` (clears the counters), ``GET /__faults__/stats``.

Run: ``python -m tests.faults.proxy --upstream http://127.0.0.1:5000`` prints ``listening <port>``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULTS = ("slowdown", "error500", "reset", "slow", "lost_put", "error200", "cut_xml")
KINDS = ("GET", "PUT", "LIST", "DELETE", "HEAD", "POST", "OTHER")
# which request kinds a fault applies to by default: a reset mid-body needs a body to cut, a lost PUT a PUT
DEFAULT_KINDS = {
    "slowdown": KINDS,
    "error500": KINDS,
    "reset": ("GET", "LIST"),
    "slow": KINDS,
    "lost_put": ("PUT",),
    "error200": ("LIST",),
    "cut_xml": ("LIST",),
}
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
CONTROL = "/__faults__/"


@dataclass
class FaultPlan:
    """Which requests get which fault: every ``every``-th eligible request from the ``first``-th on, at most
    ``limit`` times (``None``: no limit)."""

    fault: str
    every: int = 3
    first: int = 1
    limit: int | None = None
    kinds: tuple[str, ...] = ()
    delay: float = 0.3

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {', '.join(FAULTS)}")
        if self.every < 1 or self.first < 1:
            raise ValueError("every and first start at 1")
        self.kinds = tuple(self.kinds) or DEFAULT_KINDS[self.fault]


@dataclass
class Stats:
    """Requests forwarded (or answered by a fault) since the last reset."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[str] = field(default_factory=Counter)  # request bodies, client → server
    bytes_received: Counter[str] = field(default_factory=Counter)  # response bodies, server → client
    deleted_keys: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str, int]] = field(default_factory=list)  # kind, method, path, status (or -1)


def classify(method: str, target: str) -> str:
    """The request's kind, from its method and target (path-style or virtual-host addressing)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    path = parts.path.strip("/")
    bucket_root = "/" not in path  # path-style "/bucket" (a virtual-host request's root is "/")
    if method == "HEAD":
        return "HEAD"
    if method == "DELETE":
        return "DELETE" if "uploadId" not in query else "OTHER"
    if method == "POST":
        return "DELETE" if "delete" in query else "POST"
    if method == "PUT":
        return "PUT" if not bucket_root else "OTHER"
    if method == "GET":
        if bucket_root:
            return (
                "LIST"
                if not (
                    set(query)
                    - {
                        "list-type",
                        "prefix",
                        "delimiter",
                        "continuation-token",
                        "start-after",
                        "max-keys",
                        "encoding-type",
                        "fetch-owner",
                        "marker",
                    }
                )
                else "OTHER"
            )
        return "GET"
    return "OTHER"


def _error_xml(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
        "<RequestId>faultproxy</RequestId></Error>"
    ).encode()


class _State:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.lock = threading.Lock()
        self.plan: FaultPlan | None = None
        self.eligible = 0
        self.injected = 0
        self.stats = Stats()

    def decide(self, kind: str) -> FaultPlan | None:
        with self.lock:
            plan = self.plan
            if plan is None or kind not in plan.kinds:
                return None
            if plan.limit is not None and self.injected >= plan.limit:
                return None
            self.eligible += 1
            n = self.eligible - plan.first
            if n < 0 or n % plan.every:
                return None
            self.injected += 1
            return plan


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # no Nagle: headers and body go in separate writes, and a delayed ACK would stall each answer 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        trailer = self.rfile.readline()
                        raw += trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _control(self, body: bytes) -> None:
        state = self.server.state
        what = self.path[len(CONTROL) :]
        answer: Any = {"ok": True}
        with state.lock:
            if what == "plan" and self.command == "POST":
                spec = json.loads(body or b"{}")
                state.plan = FaultPlan(**spec) if spec else None
                state.eligible = state.injected = 0
            elif what == "reset" and self.command == "POST":
                state.stats = Stats()
            elif what == "stats":
                s = state.stats
                answer = {
                    "requests": dict(s.requests),
                    "bytes_sent": dict(s.bytes_sent),
                    "bytes_received": dict(s.bytes_received),
                    "deleted_keys": s.deleted_keys,
                    "faults": dict(s.faults),
                    "statuses": dict(s.statuses),
                    "log": s.log,
                }
            else:
                answer = {"error": f"unknown control {self.command} {what}"}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset_connection(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _record(self, kind: str, sent: int, received: int, status: int, fault: str | None) -> None:
        state = self.server.state
        with state.lock:
            s = state.stats
            s.requests[kind] += 1
            s.bytes_sent[kind] += sent
            s.bytes_received[kind] += received
            s.statuses[str(status)] += 1
            if fault:
                s.faults[fault] += 1
            s.log.append((kind, self.command, self.path, status))

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        state = self.server.state
        conn = http.client.HTTPConnection(state.host, state.port, timeout=120)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() in _HOP - {"transfer-encoding"} or key.lower() == "expect":
                    continue
                conn.putheader(key, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
            return response.status, response.reason, headers, data
        finally:
            conn.close()

    def _handle(self) -> None:
        body = self._body()
        if self.path.startswith(CONTROL):
            self._control(body)
            return
        kind = classify(self.command, self.path)
        if kind == "DELETE" and self.command == "POST":
            with self.server.state.lock:
                self.server.state.stats.deleted_keys += body.count(b"<Key>")
        elif kind == "DELETE":
            with self.server.state.lock:
                self.server.state.stats.deleted_keys += 1
        plan = self.server.state.decide(kind)
        fault = plan.fault if plan else None
        if fault in ("slowdown", "error500", "error200"):
            status, code, message = (
                (503, "SlowDown", "Please reduce your request rate.")
                if fault == "slowdown"
                else (
                    500 if fault == "error500" else 200,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            )
            data = _error_xml(code, message, urlsplit(self.path).path)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self._record(kind, len(body), 0, status, fault)
            return
        try:
            status, reason, headers, data = self._forward(body)
        except OSError:
            self._record(kind, len(body), 0, -1, None)
            self._reset_connection()
            return
        if fault == "lost_put":
            self._record(kind, len(body), 0, status, fault)
            self._reset_connection()
            return
        if fault == "slow" and plan is not None:
            time.sleep(plan.delay)
        if fault == "cut_xml":
            data = data[: len(data) // 2]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() in ("server", "date"):
                continue
            self.send_header(key, value)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            self._record(kind, len(body), 0, status, fault)
            return
        if fault == "reset" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self._record(kind, len(body), len(data) // 2, status, fault)
            self._reset_connection()
            return
        self.wfile.write(data)
        self._record(kind, len(body), len(data), status, fault)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State(upstream)


class ProxyClient:
    """The test side of a running proxy: its URL, the plan, the counters."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, what: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + CONTROL + what, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def plan(self, plan: FaultPlan | None) -> None:
        self._call("plan", asdict(plan) if plan else {})

    def reset(self) -> None:
        self._call("reset", {})

    def stats(self) -> dict[str, Any]:
        return dict(self._call("stats"))


@contextlib.contextmanager
def running_proxy(upstream: str) -> Iterator[ProxyClient]:
    """Start the proxy in a child process in front of ``upstream``; stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.proxy", "--upstream", upstream],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"the fault proxy did not start: {line!r}")
        yield ProxyClient(f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args(argv)
    server = _Server(args.upstream)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
