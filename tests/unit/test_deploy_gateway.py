"""One route table: the local gateway, each function's own router, /openapi.json and the
generated API Gateway config (dev/gateway_config.py) all serve the routes of functions/routes.py,
each at its function, and nothing internal is reachable through the gateway."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from typing import Any

import flask
import pytest
import yaml

import dev.gateway
from common.openapi import build_document
from dev import gateway_config
from functions.routes import FUNCTIONS, ROUTES
from tests.unit import deploy_support as ds

INTERNAL = ds.internal_functions()


# --- one route table --------------------------------------------------------------------------


def _gateway_document() -> dict[str, Any]:
    return gateway_config.build_gateway_config(gateway_config.backend_urls("123456789012", "us-central1"))


def test_local_gateway_routes_every_route_to_its_function() -> None:
    called: list[str] = []

    def recorder(name: str) -> Any:
        def entry(request: flask.Request) -> flask.Response:
            called.append(name)
            return flask.Response(name, status=299)

        return entry

    entries = {name: recorder(name) for name in FUNCTIONS}
    client = dev.gateway.create_app(ds.secure_runtime(), entries).test_client()
    for route in ROUTES:
        called.clear()
        response = client.open(ds.sample_path(route.path), method=route.method)
        assert (response.status_code, called) == (299, [route.function]), route


def test_each_function_serves_its_own_routes_only() -> None:
    runtime = ds.secure_runtime()
    for name in FUNCTIONS:
        app = ds.function_app(name, runtime)
        client = app.test_client()
        for route in ROUTES:
            if route.function in ("healthz", "openapi", "web") and route.function == name:
                continue
            status = client.open(ds.sample_path(route.path), method=route.method).status_code
            if route.function == name:
                assert status == 401, (name, route.path)
            else:
                assert status in (404, 405), (name, route.method, route.path, status)


def test_openapi_document_and_route_table_agree() -> None:
    document = build_document(ROUTES)
    operations = {(p, m.upper()): op for p, ops in document["paths"].items() for m, op in ops.items()}
    assert set(operations) == {(r.path, r.method) for r in ROUTES}
    for route in ROUTES:
        assert operations[(route.path, route.method)]["x-planter-function"] == route.function


def test_gateway_config_exposes_every_public_route_at_its_function_and_no_internal_one() -> None:
    document = _gateway_document()
    assert document["swagger"] == "2.0"
    operations = {(p, m.upper()): op for p, ops in document["paths"].items() for m, op in ops.items()}
    public = [r for r in ROUTES if r.auth != "internal"]
    assert {k for k in operations if k[1] != "OPTIONS"} == {(r.path, r.method) for r in public}
    for route in public:
        backend = operations[(route.path, route.method)]["x-google-backend"]
        assert backend["address"] == gateway_config.run_url(route.function, "123456789012", "us-central1")
        assert backend["path_translation"] == "APPEND_PATH_TO_ADDRESS"
        assert backend["disable_auth"] is True, "the user's Authorization header must reach the function"
    internal_paths = {r.path for r in ROUTES if r.auth == "internal"}
    assert not internal_paths & set(document["paths"])
    assert "/internal" not in json.dumps(document)
    for path, ops in document["paths"].items():
        assert "options" in ops, path
        declared = {p["name"] for p in ops["options"].get("parameters", [])}
        assert declared == set(re.findall(r"\{(\w+)\}", path))
        for op in ops.values():
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == declared
            assert op["responses"]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in ids)


def _configured(document: dict[str, Any], method: str, path: str) -> bool:
    for template, ops in document["paths"].items():
        if method.lower() in ops and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path):
            return True
    return False


def _fallback_client(document: dict[str, Any]) -> Any:
    by_address = {gateway_config.run_url(f, "123456789012", "us-central1"): f for f in FUNCTIONS}
    assert document["x-google-allow"] == "all"
    fallback = by_address[document["x-google-backend"]["address"]]
    assert fallback not in INTERNAL
    return ds.function_app(fallback, ds.secure_runtime()).test_client()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/tasks"),
        ("PUT", f"/api/v1/tasks/{ds.UUID}"),
        ("GET", "/api/v1/nothing"),
        ("GET", "/assets/nothing.js"),
    ],
)
def test_requests_no_operation_matches_are_answered_as_the_local_gateway_does(method: str, path: str) -> None:
    document = _gateway_document()
    assert not _configured(document, method, path)
    remote = _fallback_client(document).open(path, method=method)
    local = dev.gateway.create_app(ds.secure_runtime()).test_client().open(path, method=method)
    assert remote.status_code in (404, 405)
    assert (remote.status_code, remote.mimetype, remote.headers.get("Allow")) == (
        local.status_code,
        local.mimetype,
        local.headers.get("Allow"),
    )


@pytest.mark.parametrize("route", [r for r in ROUTES if r.auth == "internal"], ids=lambda r: r.path)
def test_internal_routes_cannot_be_reached_through_the_gateway(route: Any) -> None:
    document = _gateway_document()
    assert not _configured(document, route.method, route.path)
    response = _fallback_client(document).open(route.path, method=route.method, data=b"{}")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_gateway_config_paths_are_served_by_the_functions_they_name() -> None:
    runtime = ds.secure_runtime()
    by_address = {gateway_config.run_url(f, "123456789012", "us-central1"): f for f in FUNCTIONS}
    apps: dict[str, Any] = {}
    for path, ops in _gateway_document()["paths"].items():
        for method, op in ops.items():
            function = by_address[op["x-google-backend"]["address"]]
            if function not in apps:
                apps[function] = ds.function_app(function, runtime).test_client()
            headers = {"Origin": "https://app.example.test", "Access-Control-Request-Method": "GET"}
            response = apps[function].open(ds.sample_path(path), method=method.upper(), headers=headers)
            if method == "options":
                assert response.status_code == 204, (path, function)
                assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.test"
            else:
                assert response.status_code in (200, 401, 503), (path, method, function, response.status_code)


def test_gateway_config_cli_writes_what_the_gateway_script_uploads(tmp_path: pathlib.Path) -> None:
    out = tmp_path / ".deploy" / "gateway.yaml"
    assert (
        gateway_config.main(["--project-number", "123456789012", "--region", "europe-west1", "--output", str(out)]) == 0
    )
    text = out.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == gateway_config.build_gateway_config(
        gateway_config.backend_urls("123456789012", "europe-west1")
    )
    digest = subprocess.run(
        [
            "python3",
            "-c",
            "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest()[:12])",
            out,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert digest == gateway_config.config_digest(text)
    # One URL overridden (a custom domain, say); without the others the generator refuses.
    custom = tmp_path / "custom.json"
    args = ["--project-number", "123456789012", "--region", "europe-west1", "--output", str(custom)]
    assert gateway_config.main([*args, "--backend", "healthz=https://health.example.test"]) == 0
    document = json.loads(custom.read_text(encoding="utf-8"))
    assert document["paths"]["/healthz"]["get"]["x-google-backend"]["address"] == "https://health.example.test"
    with pytest.raises(SystemExit):
        gateway_config.main(["--backend", "healthz=https://h.example.test", "--output", str(tmp_path / "x.yaml")])


def test_gateway_step_uploads_the_generated_config() -> None:
    generated = ds.step("gateway-config")["args"]
    assert "dev.gateway_config" in generated
    output = ds.flag(generated, "output")
    assert ds.step("gateway")["args"] == ["deploy/gateway.sh", output]
    assert output.startswith(".deploy/")
