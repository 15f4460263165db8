"""The round-trip budget of the engine and the hot reads, counted on the wire (tests/wire.py).

A delivery of a middle step is its claim and its record, one exchange each: each is one call of a
server-side function (migration 0004_i13), sent as a prepared statement (common.db.prepared).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from common import pipeline
from common.runtime import Runtime
from tests.conftest import callback_token
from tests.integration.test_steps import create, deliver

MIDDLE = pipeline.STEPS[2]  # neither the first step nor the last


def _up_to_middle(client: Any, headers: dict[str, str], name: str) -> str:
    task_id: str = create(client, headers, name=name)["task_id"]
    for step in pipeline.STEPS[: pipeline.STEPS.index(MIDDLE)]:
        assert deliver(client, task_id, step.name).get_json()["outcome"] == "succeeded"
    return task_id


def test_a_middle_step_is_two_round_trips(wired_client: Any, auth_header: Any, wire: Any) -> None:
    client = wired_client
    warm, counted = (_up_to_middle(client, auth_header(), f"Budget {i}") for i in range(2))
    # The first delivery of the step prepares its statements on the connection.
    assert deliver(client, warm, MIDDLE.name).get_json()["outcome"] == "succeeded"
    with wire.counting() as trips:
        body = deliver(client, counted, MIDDLE.name).get_json()
    assert body["outcome"] == "succeeded"  # and the next step was handed over (test_steps.py)
    assert trips == [2]  # claim + record; the budget is 6


def test_a_progress_callback_and_a_task_read_are_one_round_trip_each(
    wired_client: Any, auth_header: Any, wire: Any
) -> None:
    client = wired_client
    headers = auth_header()
    task_id = create(client, headers, name="Hot Paths")["task_id"]
    callback = {"Authorization": f"Bearer {callback_token(task_id)}"}
    counts = []
    for i in range(2):  # the first of each prepares its statement
        with wire.counting() as posted:
            response = client.post(
                f"/api/v1/tasks/{task_id}/progress",
                json={"update_id": f"u{i}", "message": "working", "progress_percent": 5 + i},
                headers=callback,
            )
        assert response.status_code == 200, response.get_json()
        with wire.counting() as read:
            assert client.get(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 200
        counts.append((posted[0], read[0]))
    assert counts[1] == (1, 1)


def test_the_wire_sees_each_exchange(wired: Runtime, wire: Any) -> None:
    # The guard on the count itself: pg8000 sends an unprepared parameterised statement as three
    # exchanges (Parse, Describe, Bind/Execute); if the proxy merged them, it would read 1 here.
    with wired.db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))  # the connection is made
        with wire.counting() as trips:
            conn.execute(sa.text("SELECT CAST(:n AS int)"), {"n": 1})
    assert trips == [3]
