"""A NUL character in a query parameter or path is a client error, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import assert_problem

CASES = [
    "/api/v1/tasks?status=%00",
    "/api/v1/tasks?cursor=%00",
    "/api/v1/tasks?limit=%00",
    "/api/v1/tasks/%00",
    "/api/v1/tasks/%00/progress",
    "/api/v1/dashboard/active-tasks?tz=%00",
    "/api/v1/dashboard/active-tasks?tz=UTC%00",
    "/api/v1/dashboard/metrics?tz=Europe/Paris%00",
    "/api/v1/dashboard/time-series?metric=tasks_created&tz=%00",
    "/api/v1/dashboard/time-series?metric=%00",
]


@pytest.mark.parametrize("path", CASES)
def test_a_nul_in_the_query_or_path_is_a_client_error(client: Any, auth_header: Any, path: str) -> None:
    response = client.get(path, headers=auth_header())
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert_problem(response, response.status_code)
