"""A fault-injecting HTTP/1.1 proxy between a DynamoDB client and DynamoDB Local, for the reliability suite.

The proxy listens on 127.0.0.1 and forwards every request to DynamoDB Local over a kept-alive connection (one per
client connection; botocore keeps its connections open too). For each request it first consults the forced faults
queued with :meth:`FaultProxy.force`, then draws, with a seeded random generator, from the configured
:class:`FaultMix`, and either forwards the request normally or injects one fault:

==============  ===============================================================================================
kind            what the client sees / what DynamoDB sees
==============  ===============================================================================================
``throttle``    400 ``ProvisionedThroughputExceededException``; the request never reaches DynamoDB
``throttling``  400 ``ThrottlingException``; the request never reaches DynamoDB
``error500``    500 ``InternalServerError``; the request never reaches DynamoDB
``error503``    503 with an empty JSON body (a load balancer's answer); never reaches DynamoDB
``slow``        no answer before the client's read timeout; the request reaches DynamoDB *late*, after the delay
                (so possibly after the client's retry of it), and its answer is thrown away
``reset``       the connection is reset (RST, SO_LINGER 0) after the request was read; never reaches DynamoDB
``lost``        the request is forwarded and applied, DynamoDB's answer is read, then the client connection is reset
                without it: the client retries an operation that already happened
==============  ===============================================================================================

Everything is counted (:class:`ProxyStats`): requests per DynamoDB operation (the ``X-Amz-Target`` header), faults
per kind and per operation, requests that reached DynamoDB. Only operations in ``operations`` (all when None) are
subject to faults; control-plane operations (CreateTable, DescribeTable, ...) are left alone by default.

The random draws are seeded, so a single-threaded run is reproducible; with concurrent clients the sequence of draws
is the same but which request gets which draw depends on scheduling.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import socketserver
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

#: Every kind of fault the proxy can inject, in the order the random draw considers them.
FAULT_KINDS: tuple[str, ...] = ("throttle", "throttling", "error500", "error503", "slow", "reset", "lost")

#: Kinds after which the request never reached DynamoDB.
NOT_APPLIED_KINDS = frozenset({"throttle", "throttling", "error500", "error503", "reset"})

#: Operations that are never faulted unless named explicitly in ``operations``.
CONTROL_PLANE = frozenset(
    {"CreateTable", "DeleteTable", "DescribeTable", "UpdateTable", "ListTables", "UpdateTimeToLive",
     "DescribeTimeToLive"}
)  # fmt: skip

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade", "content-length"}
)  # fmt: skip
_ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class FaultMix:
    """Probabilities, per request, of each fault; the rest of the requests are forwarded untouched.

    :param throttle: float = 400 ProvisionedThroughputExceededException
    :param throttling: float = 400 ThrottlingException
    :param error500: float = 500 InternalServerError
    :param error503: float = 503 Service Unavailable
    :param slow: float = no answer before the client's read timeout, request applied late
    :param reset: float = connection reset before the request reaches DynamoDB
    :param lost: float = request applied, answer lost (connection reset instead)
    """

    throttle: float = 0.0
    throttling: float = 0.0
    error500: float = 0.0
    error503: float = 0.0
    slow: float = 0.0
    reset: float = 0.0
    lost: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {f.name}={value} is not a probability")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.total} > 1")

    @property
    def total(self) -> float:
        """The probability that a request gets any fault.

        :return: float = the sum of the rates
        """
        return sum(float(getattr(self, kind)) for kind in FAULT_KINDS)

    @classmethod
    def only(cls, kind: str, rate: float) -> FaultMix:
        """A mix with a single kind of fault.

        :param kind: str = one of :data:`FAULT_KINDS`
        :param rate: float = its probability
        :return: FaultMix = the mix
        :raises ValueError: for an unknown kind
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        return cls(**{kind: rate})

    @classmethod
    def spread(cls, total: float, kinds: Iterable[str] = FAULT_KINDS) -> FaultMix:
        """A mix spreading ``total`` evenly over ``kinds``.

        :param total: float = the probability of any fault
        :param kinds: Iterable[str] = the kinds to use
        :return: FaultMix = the mix
        """
        chosen = list(kinds)
        return cls(**{kind: total / len(chosen) for kind in chosen})

    def draw(self, rng: random.Random) -> str | None:
        """Draw the fault of one request.

        :param rng: random.Random = the generator
        :return: Optional[str] = a fault kind, or None to forward the request untouched
        """
        point = rng.random()
        for kind in FAULT_KINDS:
            rate = float(getattr(self, kind))
            if point < rate:
                return kind
            point -= rate
        return None


@dataclass
class ProxyStats:
    """What the proxy saw and did. Read it with :meth:`FaultProxy.snapshot` while the proxy runs.

    :param requests: Counter[str] = requests received, per DynamoDB operation
    :param forwarded: Counter[str] = requests that reached DynamoDB, per operation
    :param faults: Counter[str] = faults injected, per kind
    :param faults_by_operation: Counter[str] = faults injected, per "Operation:kind"
    :param connections: int = client connections accepted
    :param upstream_errors: int = requests DynamoDB Local itself failed to answer (answered 502; should stay 0)
    """

    requests: Counter[str] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_operation: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    upstream_errors: int = 0

    @property
    def total_requests(self) -> int:
        """Requests received in all.

        :return: int = the count
        """
        return sum(self.requests.values())

    @property
    def total_faults(self) -> int:
        """Faults injected in all.

        :return: int = the count
        """
        return sum(self.faults.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as plain JSON-ready values.

        :return: Dict[str, Any] = the figures
        """
        return {
            "requests": dict(sorted(self.requests.items())),
            "forwarded": dict(sorted(self.forwarded.items())),
            "faults": dict(sorted(self.faults.items())),
            "faults_by_operation": dict(sorted(self.faults_by_operation.items())),
            "connections": self.connections,
            "upstream_errors": self.upstream_errors,
            "total_requests": self.total_requests,
            "total_faults": self.total_faults,
        }


@dataclass
class _Forced:
    kind: str
    operation: str | None
    remaining: int


class _ClientGone(Exception):
    """The client closed or reset its connection."""


class _Connection:
    """A buffered reader of HTTP/1.1 requests on one client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except OSError as err:
            raise _ClientGone(str(err)) from err
        if not chunk:
            raise _ClientGone("closed")
        self.buffer += chunk

    def read_request(self) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
        """Read one request: method, path, headers and body; None when the client closed between requests."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > _MAX_HEADER_BYTES:
                raise _ClientGone("header too large")
            try:
                self._fill()
            except _ClientGone:
                if not self.buffer:
                    return None
                raise
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = [(name.strip(), value.strip()) for name, value in (line.split(":", 1) for line in lines[1:] if line)]
        length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return method, path, headers, body

    def send(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send one response, keeping the connection open."""
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
        lines += [f"Content-Length: {len(body)}", "Connection: keep-alive", "", ""]
        try:
            self.sock.sendall("\r\n".join(lines).encode("iso-8859-1") + body)
        except OSError as err:
            raise _ClientGone(str(err)) from err

    def reset(self) -> None:
        """Abort the connection with a TCP reset (SO_LINGER 0, then close)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.sock.close()


class _Upstream:
    """A kept-alive connection to DynamoDB Local, reopened when it was closed while idle."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send a request and read the whole answer."""
        sent_headers = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}
        sent_headers["Content-Length"] = str(len(body))
        reused = self.conn is not None
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=sent_headers)
                response = self.conn.getresponse()
                data = response.read()
                result = (response.status, response.reason, response.getheaders(), data)
                if response.will_close:
                    self.close()
                return result
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # An idle kept-alive connection closed by the server fails on first use, before the request was
                # read: send it again once, on a fresh connection. Never on a fresh connection (no double apply).
                if attempt or not reused:
                    raise
            except Exception:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None


def _operation(headers: list[tuple[str, str]]) -> str:
    target = next((value for name, value in headers if name.lower() == "x-amz-target"), "")
    return target.rsplit(".", 1)[-1] if target else "unknown"


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"__type": _ERROR_TYPE_PREFIX + error_type, "message": message}).encode()


_JSON_HEADERS = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "fault-proxy")]
_CANNED: dict[str, tuple[int, str, bytes]] = {
    "throttle": (
        400,
        "Bad Request",
        _error_body(
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected)",
        ),
    ),
    "throttling": (400, "Bad Request", _error_body("ThrottlingException", "Rate of requests exceeds the allowed "
                                                   "throughput (injected)")),
    "error500": (500, "Internal Server Error", _error_body("InternalServerError", "Internal server error (injected)")),
    "error503": (503, "Service Unavailable", b"{}"),
}  # fmt: skip


class FaultProxy:
    """The fault-injecting proxy. Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param upstream: str = URL of DynamoDB Local, ``http://127.0.0.1:PORT``
    :param mix: FaultMix = fault probabilities; no fault when None
    :param seed: int = seed of the random draws
    :param slow_seconds: float = how long a ``slow`` request is held; longer than the client's read timeout
    :param operations: Optional[Iterable[str]] = operations subject to faults; all but control-plane ones when None
    :param upstream_timeout: float = timeout of the proxy's own requests to DynamoDB Local
    """

    def __init__(
        self,
        upstream: str,
        mix: FaultMix | None = None,
        seed: int = 0,
        slow_seconds: float = 1.5,
        operations: Iterable[str] | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream {upstream!r} needs a host and a port")
        self.upstream_host: str = parts.hostname
        self.upstream_port: int = parts.port
        self.upstream_timeout = upstream_timeout
        self.mix = mix or FaultMix()
        self.slow_seconds = slow_seconds
        self.operations: frozenset[str] | None = frozenset(operations) if operations is not None else None
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._forced: deque[_Forced] = deque()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        #: Called with (operation, request body) for every request, before any fault; tests use it to see exactly
        #: what the client sent.
        self.on_request: Callable[[str, bytes], None] | None = None

    # -- life cycle --------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy's endpoint URL, for ``host=`` of the repositories.

        :return: str = ``http://127.0.0.1:PORT``
        :raises RuntimeError: when the proxy is not started
        """
        if self._server is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Start listening on an ephemeral port of 127.0.0.1.

        :return: FaultProxy = self
        """
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.drain(timeout=self.slow_seconds + self.upstream_timeout)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------------------------------

    def set_mix(self, mix: FaultMix) -> None:
        """Change the fault probabilities from the next request on.

        :param mix: FaultMix = the new mix
        """
        with self._lock:
            self.mix = mix

    @contextlib.contextmanager
    def faults_off(self) -> Iterator[None]:
        """Forward every request untouched inside the block (forced faults still apply)."""
        with self._lock:
            previous, self.mix = self.mix, FaultMix()
        try:
            yield
        finally:
            with self._lock:
                self.mix = previous

    def force(self, kind: str, operation: str | None = None, times: int = 1) -> None:
        """Inject ``kind`` into the next ``times`` requests of ``operation`` (any operation when None), before any
        random draw.

        :param kind: str = one of :data:`FAULT_KINDS`
        :param operation: Optional[str] = the DynamoDB operation, such as ``UpdateItem``
        :param times: int = how many requests to fault
        :raises ValueError: for an unknown kind
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._forced.append(_Forced(kind, operation, times))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no request is in flight (a ``slow`` request may still be on its way to DynamoDB).

        :param timeout: float = seconds to wait at most
        :return: bool = True when idle
        """
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def snapshot(self) -> ProxyStats:
        """Return a copy of the figures so far.

        :return: ProxyStats = the copy
        """
        with self._lock:
            return ProxyStats(
                requests=Counter(self.stats.requests),
                forwarded=Counter(self.stats.forwarded),
                faults=Counter(self.stats.faults),
                faults_by_operation=Counter(self.stats.faults_by_operation),
                connections=self.stats.connections,
                upstream_errors=self.stats.upstream_errors,
            )

    # -- the work ----------------------------------------------------------------------------------------------------

    def _decide(self, operation: str) -> str | None:
        with self._lock:
            self.stats.requests[operation] += 1
            self._in_flight += 1
            for forced in self._forced:
                if forced.operation is None or forced.operation == operation:
                    forced.remaining -= 1
                    if forced.remaining <= 0:
                        self._forced.remove(forced)
                    kind: str | None = forced.kind
                    break
            else:
                if self.operations is not None:
                    eligible = operation in self.operations
                else:
                    eligible = operation not in CONTROL_PLANE
                kind = self.mix.draw(self._rng) if eligible else None
            if kind is not None:
                self.stats.faults[kind] += 1
                self.stats.faults_by_operation[f"{operation}:{kind}"] += 1
            return kind

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock)
        upstream = _Upstream(self.upstream_host, self.upstream_port, self.upstream_timeout)
        with self._lock:
            self.stats.connections += 1
            self._sockets.add(sock)
        try:
            while True:
                request = connection.read_request()
                if request is None:
                    return
                method, path, headers, body = request
                operation = _operation(headers)
                if self.on_request is not None:
                    self.on_request(operation, body)
                kind = self._decide(operation)
                try:
                    if not self._handle(connection, upstream, operation, kind, method, path, headers, body):
                        return
                finally:
                    self._done()
        except _ClientGone:
            return
        finally:
            upstream.close()
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _forward(
        self, upstream: _Upstream, operation: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        try:
            answer = upstream.request(method, path, headers, body)
        except (OSError, http.client.HTTPException) as err:
            with self._lock:
                self.stats.upstream_errors += 1
            return 502, "Bad Gateway", _JSON_HEADERS, _error_body("BadGateway", f"upstream failed: {err}")
        with self._lock:
            self.stats.forwarded[operation] += 1
        return answer

    def _handle(
        self,
        connection: _Connection,
        upstream: _Upstream,
        operation: str,
        kind: str | None,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> bool:
        """Serve one request; return False when the client connection is finished."""
        if kind in _CANNED:
            status, reason, error = _CANNED[kind]
            connection.send(status, reason, _JSON_HEADERS, error)
            return True
        if kind == "reset":
            connection.reset()
            return False
        if kind == "slow":
            time.sleep(self.slow_seconds)
            self._forward(upstream, operation, method, path, headers, body)
            connection.reset()  # the client gave up long ago; its answer goes nowhere
            return False
        status, reason, answer_headers, answer = self._forward(upstream, operation, method, path, headers, body)
        if kind == "lost":
            connection.reset()
            return False
        connection.send(status, reason, answer_headers, answer)
        return True
