"""Tools of `make bench`: a small HTTP load generator, statistics, processes, profiles, import times.

The load generator is plain asyncio over raw sockets with HTTP/1.1 keep-alive: one request in
flight per connection, requests prebuilt as bytes, responses framed by Content-Length. It costs
a few tens of microseconds of CPU per request, so one core of it outruns a functions-framework
worker by a wide margin; `make bench` checks that in every run (the generator check row).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from dev.stack import ROOT, VENV_BIN

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


# --- processes --------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def start_function(source: pathlib.Path, target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """functions-framework serving ``target`` of ``source``, with ``env`` as its whole environment."""
    return subprocess.Popen(
        [
            *(str(VENV_BIN / "functions-framework"), "--source", str(source), "--target", target),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_answering(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except (ConnectionError, OSError):
            time.sleep(0.1)
        finally:
            conn.close()
    raise TimeoutError(f"nothing answers on port {port}")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, plus its reaped children."""
    parents: dict[int, int] = {}
    times: dict[int, tuple[int, int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    tree, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = sum(times[p][0] for p in tree if p in times) + times.get(root_pid, (0, 0))[1]
    return total / _TICK


# --- py-spy profiles (GIL-holding samples, charged to the innermost known package) ----------------

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
OWNERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pg8000 (driver)", ("pg8000/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("PyJWT + cryptography", ("jwt/", "cryptography/")),
    ("Flask", ("flask/",)),
    ("Werkzeug", ("werkzeug/",)),
    ("gunicorn", ("gunicorn/",)),
    ("functions-framework", ("functions_framework/",)),
    ("google / grpc", ("google/", "grpc/", "proto/")),
    ("Planter code", ("common/", "functions/", "dev/gateway.py", "main.py")),
)
OTHER = "other (stdlib, idle loops)"


def py_spy() -> str | None:
    local = VENV_BIN / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_profile(exe: str, pid: int, output: pathlib.Path, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    """Sample ``pid`` and its children for ``seconds``, collapsed stacks into ``output``."""
    command = [exe, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking", "--rate", str(rate)]
    command += ["--duration", str(round(seconds)), "--format", "raw", "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def owner_shares(path: pathlib.Path) -> tuple[int, dict[str, float]]:
    """(samples, share of samples per owner) from py-spy's raw output."""
    owners: Counter[str] = Counter()
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        files = [m["file"] for f in stack.split(";") if (m := _FRAME.match(f))]
        if not files or not count.isdigit():
            continue
        owner = next(
            (name for file in reversed(files) for name, marks in OWNERS if any(m in file for m in marks)), OTHER
        )
        owners[owner] += int(count)
    samples = sum(owners.values())
    return samples, {k: v / samples for k, v in owners.most_common()} if samples else {}


# --- -X importtime ---------------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (.*)$")


def import_self_ms(stderr: str) -> dict[str, float]:
    """Import self time summed per top-level package (ms), largest first."""
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        if m := _IMPORT_LINE.match(line):
            totals[m.group(3).strip().split(".")[0]] += int(m.group(1))
    return {package: us / 1000 for package, us in totals.most_common()}


def import_cumulative_ms(stderr: str, name: str) -> float | None:
    """The cumulative import time of module ``name`` (its outermost import), ms."""
    for line in stderr.splitlines():
        if (m := _IMPORT_LINE.match(line)) and m.group(3).strip() == name:
            return int(m.group(2)) / 1000
    return None
