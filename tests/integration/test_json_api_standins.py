"""What the Google Cloud and Gemini stand-ins share (dev/standins/json_api.py): their own endpoints,
injected faults in Google's error shape, 400 for a body that is not JSON or a fault that is not one,
and the log of the exchanges they routed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dev.standins.gcp.server import GcpStandIn
from dev.standins.gemini import GeminiStandIn
from dev.standins.json_api import JsonApiStandIn

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture(params=[GcpStandIn, GeminiStandIn])
def standin(request: pytest.FixtureRequest) -> Iterator[JsonApiStandIn]:
    started: JsonApiStandIn = request.param().start()
    yield started
    started.stop()


def _google_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert [t.lower() for t in response.headers.get_list("content-type")] == ["application/json; charset=utf-8"]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "status"} and error["code"] == status
    message: str = error["message"]
    return message


def test_a_fault_answers_the_next_matching_requests_in_googles_shape(standin: JsonApiStandIn) -> None:
    with httpx.Client(base_url=standin.base_url) as http:
        fault = {"method": "GET", "path": ".", "status": 429, "times": 2, "headers": {"Retry-After": "7"}}
        assert http.post("/_faults", json=fault).status_code == 201
        for _ in range(2):
            limited = http.get("/v1/anything")
            assert _google_error(limited, 429) == "injected fault (RESOURCE_EXHAUSTED)"
            assert limited.headers["retry-after"] == "7"
            assert http.get("/healthz").status_code == 200  # the stand-in's own endpoints are never faulted
        assert http.get("/v1/anything").status_code == 404  # the fault is used up: the API answers
        http.post("/_faults", json={"path": ".", "status": 503, "times": 5})
        assert http.delete("/_faults").status_code == 204
        assert http.get("/v1/anything").status_code == 404


def test_bad_bodies_and_bad_faults_answer_400(standin: JsonApiStandIn) -> None:
    with httpx.Client(base_url=standin.base_url) as http:
        assert _google_error(http.post(GENERATE, content=b"{not json"), 400) == "the body is not JSON"
        for bad in ({"path": "."}, {"path": "(", "status": 500}, {"status": "often"}, ["a", "list"]):
            assert _google_error(http.post("/_faults", json=bad), 400).startswith("bad fault: ")
        assert http.get("/v1/anything").status_code == 404  # none of them was added


def test_every_routed_exchange_is_logged_but_not_the_faulted_ones(standin: JsonApiStandIn) -> None:
    with httpx.Client(base_url=standin.base_url) as http:
        http.post("/_faults", json={"path": "^/v1/faulted$", "status": 500})
        http.get("/v1/faulted")
        http.get("/v1/routed")
    assert [(e.method, e.path, e.status) for e in standin.exchanges] == [("GET", "/v1/routed", 404)]


def test_gemini_logs_each_generate_request_it_receives_faulted_or_not() -> None:
    standin = GeminiStandIn().start()
    try:
        with httpx.Client(base_url=standin.base_url) as http:
            http.post("/_faults", json={"path": "generateContent", "status": 503})
            body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
            assert http.post(GENERATE, json=body).status_code == 503
            assert http.post(GENERATE, json=body).status_code == 200
            logged = http.get("/_requests").json()["requests"]
            assert [r["prompt"] for r in logged] == ["hello there", "hello there"]
            assert http.delete("/_requests").status_code == 204
            assert http.get("/_requests").json() == {"requests": []}
    finally:
        standin.stop()
