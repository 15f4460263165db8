"""The planter CLI's own pieces, without a server: its event-stream reader, its drawing, its
argument errors and exit codes (the end-to-end behaviour is tests/e2e/test_cli_e2e.py)."""

from __future__ import annotations

import io
import json

import pytest

from planter_cli import main as cli
from planter_cli.render import Renderer, bar, task_lines
from planter_cli.sse import StreamState, read_events
from tests.conftest import TEST_JWT_SECRET


def test_the_reader_yields_events_and_keeps_comments_and_retry_apart() -> None:
    raw = (
        b"retry: 1500\n\n"
        b'id: 1\nevent: progress\ndata: {"a": 1}\n\n'
        b": heartbeat\n\n"
        b'event: end\ndata: {"status":\ndata: "completed"}\n\n'
        b"id: 9\n"  # a half-sent event when the connection dropped: not an event
    )
    state = StreamState()
    events = list(read_events(io.BytesIO(raw), state))
    assert [(e.event, e.id) for e in events] == [("progress", "1"), ("end", None)]
    assert json.loads(events[1].data) == {"status": "completed"}
    assert state.retry_ms == 1500 and state.comments == 1


def test_bars_and_step_lines_say_what_each_step_did() -> None:
    assert bar(0) == "[" + "-" * 24 + "]" and bar(1) == "[" + "#" * 24 + "]" and bar(0.5).count("#") == 12
    task = {
        "project_name": "Demo",
        "status": "failed",
        "progress_percent": 75,
        "message": "Failed",
        "steps": [
            {"name": "creating_org", "status": "succeeded", "attempts": 1, "error": None},
            {"name": "deploying", "status": "failed", "attempts": 3, "error": "boom"},
            {"name": "creating_issues", "status": "skipped", "attempts": 0, "error": None},
        ],
    }
    lines = task_lines(task)
    assert "75%" in lines[0]
    assert lines[2].endswith("done") and "FAILED (attempt 3): boom" in lines[3] and lines[4].endswith("skipped")


def test_piped_output_is_one_line_per_event_and_json_output_is_json_lines() -> None:
    out = io.StringIO()
    Renderer(out, live=False).progress(
        {"status": "deploying", "message": "Deploying", "progress_percent": 75}, None, "6"
    )
    assert out.getvalue() == "[" + "#" * 18 + "-" * 6 + "]  75%  deploying: Deploying\n"
    out = io.StringIO()
    Renderer(out, as_json=True).progress({"status": "x"}, None, "2")
    assert json.loads(out.getvalue()) == {"event": "progress", "id": "2", "data": {"status": "x"}}


def test_usage_errors_exit_2_and_an_unreachable_server_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["create"])
    assert usage.value.code == 2
    assert cli.main(["create", "x", "--simulate", "{not json"]) == 2
    assert cli.main(["--url", "http://127.0.0.1:9", "ls"]) == 4
    assert "cannot reach" in capsys.readouterr().err


def test_token_signs_a_user_token_with_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jwt

    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    assert cli.main(["token", "Ada@Example.test", "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["email"] == "ada@example.test" and claims["exp"] - claims["iat"] == 60
