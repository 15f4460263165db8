from __future__ import annotations

import json
import logging

from common import log


def test_log_lines_are_cloud_logging_json_with_request_fields() -> None:
    record = logging.LogRecord("planter.test", logging.WARNING, __file__, 1, "step failed", None, None)
    record.fields = {"step": "deploying"}
    token = log.request_fields.set({"task_id": "t-1", "trace": "abc"})
    try:
        entry = json.loads(log.JsonFormatter().format(record))
    finally:
        log.request_fields.reset(token)
    assert entry == {
        "severity": "WARNING",
        "message": "step failed",
        "logger": "planter.test",
        "task_id": "t-1",
        "trace": "abc",
        "step": "deploying",
    }
