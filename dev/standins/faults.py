"""Injected faults shared by the stand-ins: `POST {base}/_faults`, `DELETE {base}/_faults` (docs/API.md)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class BadFault(ValueError):
    """A `_faults` body that names no usable fault: the stand-in answers 400 with this message."""


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: the stand-in's own error body for ``status``


def _github_style(status: int) -> Any:
    return {"message": "injected fault"}


class Faults:
    """The faults waiting to be served; each matching request consumes one of its `times`.

    ``default_body`` makes the body of a fault that names none, in the shape of the stand-in's API.
    """

    def __init__(self, default_body: Callable[[int], Any] = _github_style) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._default_body = default_body

    def add(self, spec: Any) -> Fault:
        """The fault a `_faults` body describes, now waiting; BadFault when it describes none."""
        try:
            fault = Fault(
                method=str(spec.get("method", "*")).upper(),
                path=re.compile(str(spec.get("path", ".*"))),
                status=int(spec["status"]),
                times=int(spec.get("times", 1)),
                headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
                body=spec.get("body"),
            )
        except (AttributeError, KeyError, TypeError, ValueError, re.error) as error:
            raise BadFault(repr(error)) from error
        self.append(fault)
        return fault

    def append(self, fault: Fault) -> None:
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
        body = fault.body if fault.body is not None else self._default_body(fault.status)
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return fault.status, {"Content-Type": "application/json; charset=utf-8", **fault.headers}, raw
