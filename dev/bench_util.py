"""Tools of `make bench`: a small HTTP load generator, a round-trip counter for pg8000, statistics.

The load generator is plain asyncio over raw sockets with HTTP/1.1 keep-alive: one request in
flight per connection, requests prebuilt as bytes, responses framed by Content-Length. It costs
a few tens of microseconds of CPU per request, so one core of it outruns a functions-framework
worker by a wide margin; `make bench` checks that in every run (the generator check row).

The round-trip counter patches pg8000 *in the bench process only*: every flush of pg8000's
socket buffer is followed by a blocking read of the server's answer, so flushes are round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- HTTP -------------------------------------------------------------------------------------


def build_request(
    method: str, path: str, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """One HTTP/1.1 keep-alive request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_call(
    port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"", timeout: float = 30
) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class LoadResult:
    """What one load run measured (latencies in seconds, only after the warm-up)."""

    name: str
    seconds: float
    latencies: list[float] = field(repr=False)
    statuses: Counter[int]
    errors: int
    client_cpu_seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def client_cpu_share(self) -> float:
        """The generator's CPU use while measuring, as a share of one core."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.run.stop_at:
            self.transport.close()
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.run.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            length = 0
            marker = head.find(b"\r\ncontent-length:")
            if marker >= 0:
                stop = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : stop if stop >= 0 else None])
            elif b"transfer-encoding: chunked" in head:
                raise RuntimeError("chunked responses are not supported by the bench client")
            self.need = end + 4 + length
        if len(self.buffer) < self.need:
            return
        del self.buffer[: self.need]
        self.need = None
        self.run.record(self.sent_at, time.perf_counter(), self.status)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.run.stop_at:
            self.run.errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    def __init__(self, requests: Sequence[bytes], duration: float, warmup: float) -> None:
        self.requests = requests
        self.index = 0
        now = time.perf_counter()
        self.measure_from = now + warmup
        self.stop_at = self.measure_from + duration
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.cpu_at_start: float | None = None

    def next_request(self) -> bytes:
        request = self.requests[self.index % len(self.requests)]
        self.index += 1
        return request

    def record(self, sent: float, received: float, status: int) -> None:
        if sent >= self.measure_from and received <= self.stop_at:
            if self.cpu_at_start is None:
                self.cpu_at_start = time.process_time()
            self.latencies.append(received - sent)
            self.statuses[status] += 1


async def _load(port: int, requests: Sequence[bytes], connections: int, duration: float, warmup: float) -> _Run:
    loop = asyncio.get_running_loop()
    run = _Run(requests, duration, warmup)
    clients: list[_Connection] = []
    active = 0
    deadline = run.stop_at + 30
    while time.perf_counter() < run.stop_at:
        # (Re)connect until each of the connections is open; a connection the server closes
        # is opened again (counted as an error) so that the concurrency stays constant.
        clients = [c for c in clients if not c.closed.done()]
        active = len(clients)
        for _ in range(connections - active):
            _, protocol = await loop.create_connection(lambda: _Connection(run), "127.0.0.1", port)
            clients.append(protocol)
        await asyncio.sleep(0.05)
    for client in clients:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.closed), max(0.1, deadline - time.perf_counter()))
    return run


def run_load(
    name: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int = 16,
    duration: float = 5.0,
    warmup: float = 1.0,
) -> LoadResult:
    """Keep ``connections`` requests in flight for ``warmup + duration`` seconds; measure the last part."""
    cpu_before = time.process_time()
    run = asyncio.run(_load(port, requests, connections, duration, warmup))
    cpu_after = time.process_time()
    cpu_from = run.cpu_at_start if run.cpu_at_start is not None else cpu_before
    # CPU spent after the warm-up ended (approximately: up to when the last connection closed).
    return LoadResult(
        name=name,
        seconds=duration,
        latencies=run.latencies,
        statuses=run.statuses,
        errors=run.errors,
        client_cpu_seconds=cpu_after - cpu_from,
    )


# --- pg8000 round trips -----------------------------------------------------------------------


@dataclass
class RoundTrips:
    """Round trips (socket flushes answered by the server) and statements, per thread."""

    trips: int = 0
    statements: list[str] = field(default_factory=list)
    captured: list[tuple[str, Any, Any]] = field(default_factory=list)  # (SQL, values, oids) as sent
    sql_chars: int = 0  # characters pg8000 scanned to convert the paramstyle
    paramstyle_seconds: float = 0.0  # the time that conversion took


class RoundTripCounter:
    """Counts pg8000's round trips in this process while installed (never in production code).

    pg8000 flushes its write buffer once per exchange and then blocks reading the answer, so
    each flush is one round trip; the statements are recorded from execute_simple/execute_unnamed,
    and the time pg8000 spends rewriting the paramstyle of each statement is measured too.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._installed: list[tuple[Any, str, Any]] = []

    def current(self) -> RoundTrips:
        counts: RoundTrips | None = getattr(self._local, "counts", None)
        if counts is None:
            counts = RoundTrips()
            self._local.counts = counts
        return counts

    @contextlib.contextmanager
    def measure(self) -> Iterator[RoundTrips]:
        """Count what this thread sends inside the block."""
        self._local.counts = RoundTrips()
        try:
            yield self._local.counts
        finally:
            self._local.counts = None

    def install(self) -> None:
        from pg8000 import core

        counter = self

        original_flush = core._flush

        def counting_flush(sock: Any) -> None:
            counts = getattr(counter._local, "counts", None)
            if counts is not None:
                counts.trips += 1
            original_flush(sock)

        def wrap(name: str) -> None:
            original = getattr(core.CoreConnection, name)

            def wrapper(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
                counts = getattr(counter._local, "counts", None)
                if counts is not None:
                    counts.statements.append(" ".join(str(statement).split()))
                    counts.captured.append((statement, kwargs.get("vals", ()), kwargs.get("oids", ())))
                return original(self, statement, *args, **kwargs)

            self._installed.append((core.CoreConnection, name, original))
            setattr(core.CoreConnection, name, wrapper)

        self._installed.append((core, "_flush", original_flush))
        core._flush = counting_flush

        from pg8000 import legacy

        original_convert = legacy.convert_paramstyle

        def timed_convert(style: str, query: str, args: Any) -> Any:
            counts = getattr(counter._local, "counts", None)
            started = time.perf_counter()
            try:
                return original_convert(style, query, args)
            finally:
                if counts is not None:
                    counts.paramstyle_seconds += time.perf_counter() - started
                    counts.sql_chars += len(query)

        self._installed.append((legacy, "convert_paramstyle", original_convert))
        legacy.convert_paramstyle = timed_convert
        wrap("execute_simple")
        wrap("execute_unnamed")

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._installed):
            setattr(owner, name, original)
        self._installed.clear()


def statement_kind(statement: str) -> str:
    """BEGIN, COMMIT, SELECT ... FOR UPDATE, INSERT, UPDATE, WITH, SELECT: for the round-trip table."""
    words = statement.strip().split()
    first = words[0].upper() if words else "?"
    if first in ("BEGIN", "COMMIT", "ROLLBACK"):
        return first
    if first == "SELECT" and "FOR UPDATE" in statement.upper():
        return "SELECT … FOR UPDATE"
    return first


def describe_statements(statements: Sequence[str]) -> str:
    """A compact listing: 'BEGIN, SELECT … FOR UPDATE, INSERT, UPDATE, SELECT, COMMIT'."""
    return ", ".join(statement_kind(s) for s in statements)


def measure_calls(fn: Callable[[], Any], n: int) -> list[float]:
    """Wall-clock seconds of ``n`` sequential calls."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times
