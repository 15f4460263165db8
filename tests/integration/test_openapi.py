"""/openapi.json describes exactly the routes that are served, with the models' schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import flask
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from common import auth
from common.http import Route
from common.runtime import Runtime, build_runtime
from dev.gateway import create_app
from functions.entry import entrypoint
from functions.routes import FUNCTIONS, ROUTES
from tests.conftest import TEST_STEP_SECRET, callback_token, suite_settings
from tests.contract import STEP_FIELDS, TASK_FIELDS

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# The statuses API.md gives each browser route (success and errors); the document must list them.
CONTRACT = {
    ("POST", "/api/v1/projects"): {202, 400, 401, 413, 415, 422, 429, 503},
    ("GET", "/api/v1/tasks"): {200, 400, 401, 422, 503},
    ("GET", "/api/v1/tasks/{task_id}"): {200, 304, 401, 404, 503},
    ("GET", "/api/v1/tasks/{task_id}/progress"): {200, 401, 404, 503},
    ("POST", "/api/v1/tasks/{task_id}/cancel"): {200, 401, 404, 409, 503},
    ("POST", "/api/v1/tasks/{task_id}/progress"): {200, 401, 404, 409, 422, 503},
    ("GET", "/healthz"): {200, 503},
}


def test_every_route_that_parses_input_declares_400() -> None:
    # A repeated query parameter or a body that is not JSON is 400 on every such route (API.md).
    for route in ROUTES:
        if route.query_model is not None or route.request_model is not None:
            assert 400 in route.errors, (route.method, route.path)


@pytest.fixture
def document() -> dict[str, Any]:
    # The production runtime with no database at all: the document needs none, served even when it is down.
    response = create_app(build_runtime(suite_settings())).test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for escaped in ref[2:].split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, ref
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_it_is_an_openapi_3_document(document: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    operation_ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(operation_ids) == len(set(operation_ids))


def test_its_paths_and_methods_are_exactly_the_routes_served(document: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in _operations(document)}
    assert documented == {(r.method, r.path) for r in ROUTES}
    for method, path, operation in _operations(document):
        route = next(r for r in ROUTES if (r.method, r.path) == (method, path))
        assert operation["x-planter-function"] == route.function
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path))


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert refs, "the document uses components"
    for ref in refs:
        _resolve(document, ref)


def test_bodies_and_responses_use_the_models(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    for method, path, operation in _operations(document):
        route = next(r for r in ROUTES if (r.method, r.path) == (method, path))
        if route.request_model is not None:
            content = operation["requestBody"]["content"]["application/json"]
            assert _resolve(document, content["schema"]["$ref"]) == schemas[route.request_model.__name__]
        else:
            assert "requestBody" not in operation
        success = operation["responses"][str(route.status)]
        if route.response_model is not None:
            ref = success["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{route.response_model.__name__}"
        for status in route.errors:
            response = operation["responses"][str(status)]
            assert response["description"]
            if status != 304:
                assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
        if route.query_model is not None:
            documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
            assert documented == set(route.query_model.model_fields)
        security = operation["security"]
        assert (security == []) == (route.auth == "none")
        for requirement in security:
            for scheme in requirement:
                assert scheme in document["components"]["securitySchemes"]


def test_the_contract_statuses_are_documented(document: dict[str, Any]) -> None:
    for (method, path), statuses in CONTRACT.items():
        documented = {int(s) for s in document["paths"][path][method.lower()]["responses"]}
        assert statuses <= documented, (method, path, statuses - documented)


def test_the_task_schema_is_the_task_object_of_the_contract(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    task = schemas["Task"]
    assert set(task["properties"]) == TASK_FIELDS
    assert set(task["required"]) == TASK_FIELDS
    step = _resolve(document, task["properties"]["steps"]["items"]["$ref"])
    assert set(step["properties"]) == STEP_FIELDS
    assert set(step["properties"]["status"]["enum"]) == {
        "pending",
        "running",
        "waiting",
        "succeeded",
        "failed",
        "skipped",
    }
    create = schemas["CreateProject"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["project_name"]
    props = create["properties"]
    assert (props["project_name"]["minLength"], props["project_name"]["maxLength"]) == (1, 100)
    assert props["project_description"]["maxLength"] == 5000
    assert set(props["mode"]["enum"]) == {"saas", "user"}


def test_declared_response_headers(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/projects"]["post"]["responses"]
    assert "Location" in create["202"]["headers"]
    assert "Retry-After" in create["429"]["headers"]
    assert "Retry-After" in create["503"]["headers"]
    read = document["paths"]["/api/v1/tasks/{task_id}"]["get"]["responses"]
    assert "ETag" in read["200"]["headers"]
    assert "ETag" in read["304"]["headers"]


# --- the routes are really served ---------------------------------------------------------------------


def _function_client(name: str, runtime: Runtime) -> Any:
    """One deployed function on its own, as Cloud Functions runs it (functions-framework style)."""
    app = flask.Flask(name)
    entry = entrypoint(name, lambda: runtime)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.route("/", defaults={"path": ""}, methods=methods)
    @app.route("/<path:path>", methods=methods)
    def _all(path: str) -> flask.Response:
        return entry(flask.request)

    return app.test_client()


def _conversation_of(engine: Any, task_id: str) -> str:
    """A conversation of the task's owner (the assistant's routes take its id)."""
    with engine.begin() as conn:
        return str(
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, user_id, title) SELECT gen_random_uuid(), user_id, 'served'"
                    " FROM tasks WHERE id = :t RETURNING id"
                ),
                {"t": task_id},
            ).scalar_one()
        )


def _request(
    client: Any, route: Route, task_id: str, user: dict[str, str], job_id: str | None = None, conversation_id: str = ""
) -> Any:
    path = route.path.replace("{task_id}", task_id).replace("{conversation_id}", conversation_id)
    if "{job_id}" in path:  # a fresh job each time: DELETE must not leave the next request a 404
        job_id = job_id or client.post("/api/v1/jobs", json=JOB_EXAMPLE, headers=user).get_json()["job_id"]
        path = path.replace("{job_id}", job_id)
    headers: dict[str, str] = {}
    if route.auth == "user":
        headers = user
    elif route.auth == "callback":
        headers = {"Authorization": f"Bearer {callback_token(task_id)}"}
    elif route.auth == "internal":
        # Signed, but with an empty object: the request reaches the function and is refused there.
        headers = {auth.SIGNATURE_HEADER: auth.sign_body(b"{}", TEST_STEP_SECRET)}
        return client.open(path, method=route.method, data=b"{}", content_type="application/json", headers=headers)
    body: dict[str, Any] | None = None
    if route.request_model is not None:
        body = _example(route.request_model)
    return client.open(path, method=route.method, json=body, headers=headers)


JOB_EXAMPLE = {
    "name": "nightly",
    "schedule": "0 3 * * *",
    "task": {"type": "create_project", "payload": {"project_name": "n"}},
}


def _example(model: type[BaseModel]) -> dict[str, Any]:
    examples: dict[str, dict[str, Any]] = {
        "CreateProject": {"project_name": "served"},
        "ProgressCallback": {"message": "working"},
        "CreateTask": {"type": "create_project", "payload": {"project_name": "served"}},
        "CreateJob": JOB_EXAMPLE,
    }
    return examples.get(model.__name__, {})


def test_every_documented_route_is_served(
    client: Any, runtime: Runtime, auth_header: Any, enqueued: Any, engine: Any
) -> None:
    task_id = client.post("/api/v1/projects", json={"project_name": "x"}, headers=auth_header()).get_json()["task_id"]
    conversation_id = _conversation_of(engine, task_id)
    functions = {name: _function_client(name, runtime) for name in FUNCTIONS}
    wrong: list[Any] = []
    for route in ROUTES:
        for via, each in (("gateway", client), (route.function, functions[route.function])):
            response = _request(each, route, task_id, auth_header(), conversation_id=conversation_id)
            if response.status_code in (404, 405) or response.status_code >= 500:
                wrong.append((via, route.method, route.path, response.status_code, response.get_json()))
    assert wrong == []


def test_each_function_serves_only_its_own_routes(
    client: Any, runtime: Runtime, auth_header: Any, enqueued: Any
) -> None:
    task_id = client.post("/api/v1/projects", json={"project_name": "x"}, headers=auth_header()).get_json()["task_id"]
    wrong: list[Any] = []
    for name in FUNCTIONS:
        function = _function_client(name, runtime)
        for route in ROUTES:
            if route.function == name:
                continue
            response = _request(function, route, task_id, auth_header(), job_id=task_id)
            if response.status_code not in (404, 405) or response.mimetype != "application/problem+json":
                wrong.append((name, route.method, route.path, response.status_code))
            elif response.status_code == 405 and route.method in response.headers["Allow"]:
                # "Method not allowed" while naming that very method as allowed contradicts itself.
                wrong.append((name, route.method, route.path, 405, response.headers["Allow"]))
    assert wrong == []
