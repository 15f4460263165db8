"""Injected faults shared by the stand-ins: `POST {base}/_faults`, `DELETE {base}/_faults` (docs/API.md)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any


class Faults:
    """The faults waiting to be served; each matching request consumes one of its `times`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> None:
        fault = Fault(
            method=str(spec.get("method", "*")).upper(),
            path=re.compile(str(spec["path"])),
            status=int(spec["status"]),
            times=int(spec.get("times", 1)),
            headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
            body=spec.get("body"),
        )
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        """The fault answer for this request, if one is waiting: (status, headers, body)."""
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method.upper()) and fault.path.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    break
            else:
                return None
        body = fault.body if fault.body is not None else {"message": "injected fault"}
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return fault.status, {"Content-Type": "application/json; charset=utf-8", **fault.headers}, raw
