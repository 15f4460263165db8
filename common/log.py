"""Structured logs: one JSON object per line, the shape Cloud Logging reads."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from typing import Any

# Per-request fields (trace, user, task) added to every line logged while the request runs.
request_fields: ContextVar[dict[str, str]] = ContextVar("request_fields", default={})  # noqa: B039

_SEVERITY = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}


class JsonFormatter(logging.Formatter):
    """Formats a record as a Cloud Logging structured entry."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(request_fields.get())
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


def configure() -> None:
    """Send every log line as JSON to stdout; idempotent."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def get_logger(name: str) -> logging.Logger:
    configure()
    return logging.getLogger(name)


def bind(**fields: str) -> None:
    """Attach fields (task_id, user, trace) to every line logged for the rest of this request."""
    request_fields.set({**request_fields.get(), **{k: v for k, v in fields.items() if v}})
