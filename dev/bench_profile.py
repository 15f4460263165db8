"""Where the time goes, for `make bench`: py-spy profiles of the server and `-X importtime` lists.

py-spy samples the functions process (gunicorn arbiter and its worker) with ``--gil``: only the
thread holding the GIL is sampled, which is what bounds a single-worker server's throughput. A
sample is charged to the innermost frame that belongs to a known package (pg8000, SQLAlchemy,
pydantic, ...) or to Planter's own code, walking outwards from the leaf past the standard library.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")

# Checked in order against a frame's file path; the first match names the frame's owner.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
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
    ("json (stdlib)", ("json/",)),
)
_PLANTER = re.compile(r"(^|/)(common|functions)/[\w/]+\.py$|(^|/)(main|dev/gateway)\.py$")


def py_spy() -> str | None:
    """The py-spy executable (requirements-dev.txt installs it), or None."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_profile(pid: int, output: Path, duration: float, rate: int = 250) -> subprocess.Popen[bytes]:
    """Sample ``pid`` and its children for ``duration`` seconds, collapsed stacks into ``output``."""
    exe = py_spy()
    assert exe is not None
    command = [exe, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking"]
    command += ["--rate", str(rate), "--duration", str(round(duration)), "--format", "raw", "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _owner(file: str) -> str | None:
    for name, needles in CATEGORIES:
        if any(n in file for n in needles):
            if name == "json (stdlib)" and "site-packages" in file:
                continue
            return name
    return None


@dataclass
class Profile:
    samples: int = 0
    by_owner: Counter[str] = field(default_factory=Counter)
    planter_inclusive: Counter[str] = field(default_factory=Counter)
    leaf_lines: Counter[str] = field(default_factory=Counter)

    def share(self, counter: Counter[str], key: str) -> float:
        return counter[key] / self.samples if self.samples else 0.0


def parse(path: Path) -> Profile:
    """Read py-spy's raw (collapsed) output."""
    profile = Profile()
    if not path.exists():
        return profile
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        parsed = [m.groupdict() for f in frames if (m := _FRAME.match(f))]
        if not parsed:
            continue
        profile.samples += count
        owner = "other (stdlib, idle loops)"
        for frame in reversed(parsed):
            found = _owner(frame["file"])
            if found:
                owner = found
                break
        profile.by_owner[owner] += count
        leaf = parsed[-1]
        profile.leaf_lines[f"{leaf['func']} ({_short(leaf['file'])}:{leaf['line']})"] += count
        seen: set[str] = set()
        for frame in parsed:
            if _PLANTER.search(frame["file"]):
                key = f"{frame['func']} ({_short(frame['file'])})"
                if key not in seen:
                    seen.add(key)
                    profile.planter_inclusive[key] += count
    return profile


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


# --- -X importtime ----------------------------------------------------------------------------
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (.*)$")


@dataclass(frozen=True)
class ImportCost:
    package: str
    self_ms: float
    modules: int


def import_costs(stderr: str) -> list[ImportCost]:
    """Self time summed per top-level package, largest first."""
    totals: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        package = m.group(3).strip().split(".")[0]
        totals[package] += int(m.group(1))
        modules[package] += 1
    return [ImportCost(p, us / 1000, modules[p]) for p, us in totals.most_common()]


def import_cumulative(stderr: str, name: str) -> float | None:
    """The cumulative import time of module ``name`` in ms (its outermost import)."""
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m and m.group(3).strip() == name:
            return int(m.group(2)) / 1000
    return None
