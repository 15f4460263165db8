"""The Google Cloud stand-in and Planter's requests to it, checked against Google's published
discovery documents (shipped by google-api-python-client): every exchange of a real run of the
Google Cloud steps names a method Google has, and its request and answer use only the fields that
method's schemas define, so neither side can drift from Google's API unnoticed."""

from __future__ import annotations

import json
import pathlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import googleapiclient
import httpx
import pytest

from common.gcp.client import GcpClient
from common.providers import HandedOff, StepContext, StepOutcome
from common.providers.live_gcp import GcpConfig, GcpSteps
from dev.stack import free_port
from dev.standins.gcp.server import GcpStandIn

DOCUMENTS = pathlib.Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
APIS = ("cloudresourcemanager.v3", "cloudbilling.v1", "serviceusage.v1", "cloudbuild.v1", "run.v2")


def _methods(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (node.get("methods") or {}).values()
    for child in (node.get("resources") or {}).values():
        yield from _methods(child)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\+?[^}]+\})", template)
    regex = "".join(
        (".+" if p.startswith("{+") else "[^/]+") if p.startswith("{") else re.escape(p) for p in parts if p
    )
    return re.compile(f"^/{regex}$")


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: json.loads((DOCUMENTS / f"{name}.json").read_text()) for name in APIS}


def find_method(documents: dict[str, dict[str, Any]], verb: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for doc in documents.values():
        for method in _methods(doc):
            # flatPath names each segment; `path`'s {+name} would match almost anything.
            template = method.get("flatPath") or method["path"]
            if method["httpMethod"] == verb and _pattern(template).match(path):
                return doc, method
    raise AssertionError(f"no Google API method is {verb} {path}")


def unknown_fields(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Fields of `value` that `schema` (from `doc`) does not define, recursively."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    if isinstance(value, list):
        items = schema.get("items") or {}
        return [f for i, item in enumerate(value) for f in unknown_fields(doc, items, item, f"{where}[{i}]")]
    if not isinstance(value, dict):
        return []
    if "properties" not in schema:
        extra = schema.get("additionalProperties")
        if extra and extra.get("type") == "any" and "@type" in value:  # an Any: checked as its own type
            kind = doc["schemas"].get(str(value["@type"]).rsplit(".", 1)[-1])
            body = {k: v for k, v in value.items() if k != "@type"}
            return unknown_fields(doc, kind, body, where) if kind else [f"{where}: unknown type {value['@type']}"]
        if isinstance(extra, dict):
            return [f for k, v in value.items() for f in unknown_fields(doc, extra, v, f"{where}.{k}")]
        return []
    found: list[str] = []
    for key, item in value.items():
        if key not in schema["properties"]:
            found.append(f"{where}.{key}")
        else:
            found += unknown_fields(doc, schema["properties"][key], item, f"{where}.{key}")
    return found


def test_every_exchange_of_the_google_steps_matches_googles_discovery_documents(
    documents: dict[str, dict[str, Any]],
) -> None:
    standin = GcpStandIn(free_port()).start()
    try:
        config = GcpConfig("folders/1", "billingAccounts/000000-000000-000000", "us-central1", "http://127.0.0.1:9")
        gcp_steps = GcpSteps(config=config, gcp=GcpClient(base_url=standin.base_url, token=lambda: None))
        standin.add_fault({"foreign_project": "contract-app"})  # the 409 → 403 → another id path, too

        task_id = "0b7c6c1e-7d7a-4c55-9a57-3f1d2b6d1c01"

        def ctx(
            step: str,
            facts: dict[str, Any],
            handoff: dict[str, Any] | None = None,
            payload: dict[str, Any] | None = None,
        ) -> StepContext:
            return StepContext(
                task_id, step, 1, "Contract App", "", "saas", payload or {}, facts,
                lambda: "callback-token", handoff or {}, threading.Event(),
            )  # fmt: skip

        made = gcp_steps.run(ctx("creating_gcp_project", {}))
        assert isinstance(made, StepOutcome)
        facts = {**made.facts, "repo_url": "http://127.0.0.1:9/planter-projects/contract-app"}
        handed = gcp_steps.run(ctx("deploying", facts))
        assert isinstance(handed, HandedOff)
        deadline = time.monotonic() + 10
        while isinstance(found := gcp_steps.check(ctx("deploying", facts, handed.state)), HandedOff):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert found.facts["deployment_url"].endswith(".run.app")
        # A teardown (its payload names the project task) also searches for the projects labelled as the task's.
        gone = gcp_steps.run(ctx("deleting_gcp_project", facts, payload={"project_task_id": task_id}))
        assert isinstance(gone, StepOutcome) and gone.facts["gcp_project"] == "deleted"
    finally:
        standin.stop()

    problems: list[str] = []
    called = set()
    for verb, path, body, status, answer in standin.exchanges:
        doc, method = find_method(documents, verb, path)
        called.add(method["id"])
        if body:
            problems += unknown_fields(doc, method.get("request") or {}, body, f"{method['id']} request")
        if status < 300:
            problems += unknown_fields(doc, method.get("response") or {}, answer, f"{method['id']} response")
        else:
            assert set(answer["error"]) == {"code", "message", "status"}, answer
    assert problems == []
    assert called >= {
        "cloudresourcemanager.projects.create",
        "cloudresourcemanager.projects.get",
        "cloudresourcemanager.projects.delete",
        "cloudresourcemanager.projects.search",
        "cloudbilling.projects.updateBillingInfo",
        "serviceusage.services.batchEnable",
        "cloudbuild.projects.builds.create",
        "cloudbuild.projects.builds.list",
        "cloudbuild.projects.builds.get",
        "run.projects.locations.services.get",
    }, called


def test_the_project_search_matches_labels_shows_only_the_callers_projects_and_refuses_other_queries() -> None:
    standin = GcpStandIn(free_port()).start()
    try:
        standin.add_fault({"foreign_project": "foreign-app"})
        with standin.state.lock:  # someone else's project, with the same label
            standin.state.projects["foreign-app"]["labels"] = {"planter-task": "t1"}
        with httpx.Client(base_url=standin.base_url) as http:
            for project_id, task in (("one-app", "t1"), ("two-app", "t2")):
                made = {"projectId": project_id, "labels": {"planter-task": task}}
                assert http.post("/v3/projects", json=made).status_code == 200

            def found(query: str) -> list[str]:
                answer = http.get("/v3/projects:search", params={"query": query})
                assert answer.status_code == 200, answer.text
                return sorted(p["projectId"] for p in answer.json().get("projects", []))

            assert found("labels.planter-task:t1") == ["one-app"]
            assert found("LABELS.planter-task:T2") == ["two-app"]  # case-insensitive, as Google's
            assert found("labels.planter-task:t1 labels.planter-task:t2") == ["one-app", "two-app"]  # any term
            assert found("labels.planter-task:t3") == []
            refused = http.get("/v3/projects:search", params={"query": "name:one*"})
            assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    finally:
        standin.stop()


def test_the_build_list_honours_cloud_builds_tags_filter_and_refuses_filters_it_does_not_serve() -> None:
    standin = GcpStandIn(free_port()).start()
    try:
        with httpx.Client(base_url=standin.base_url) as http:
            assert http.post("/v3/projects", json={"projectId": "filter-app"}).status_code == 200
            step = {"id": "noop", "name": "gcr.io/cloud-builders/git", "args": ["version"]}
            made = [
                http.post("/v1/projects/filter-app/builds", json={"steps": [step], "tags": tags}).json()
                for tags in (["planter-deploying-t", "planter-deploying-t-a1"], ["other"], ["planter-deploying-t"])
            ]
            ids = [op["metadata"]["build"]["id"] for op in made]

            def listed(params: dict[str, str]) -> list[str]:
                answer = http.get("/v1/projects/filter-app/builds", params=params)
                assert answer.status_code == 200, answer.text
                return [b["id"] for b in answer.json()["builds"]]

            assert listed({"filter": 'tags="planter-deploying-t"'}) == [ids[2], ids[0]]  # newest first
            assert listed({"filter": 'tags="planter-deploying-t-a1"'}) == [ids[0]]
            assert listed({"filter": 'tags="planter"'}) == []  # a whole tag, not a prefix
            assert listed({}) == ids[::-1]
            for unserved in ('tag="other"', "tags=other", 'tags="a" OR tags="b"', 'status="SUCCESS"'):
                refused = http.get("/v1/projects/filter-app/builds", params={"filter": unserved})
                assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    finally:
        standin.stop()


def test_a_posting_step_that_fails_fails_the_build_unless_it_allows_failure() -> None:
    standin = GcpStandIn(free_port()).start()
    try:
        with httpx.Client(base_url=standin.base_url) as http:
            assert http.post("/v3/projects", json={"projectId": "post-app"}).status_code == 200
            nowhere = f"http://127.0.0.1:{free_port()}/progress"  # nothing listens: curl -f fails
            post = {"id": "progress", "name": "gcr.io/cloud-builders/curl", "args": ["-sf", nowhere, "-d", "{}"]}

            def ended(allow_failure: bool) -> dict[str, Any]:
                made = http.post(
                    "/v1/projects/post-app/builds", json={"steps": [{**post, "allowFailure": allow_failure}]}
                )
                url = f"/v1/projects/post-app/builds/{made.json()['metadata']['build']['id']}"
                deadline = time.monotonic() + 10
                while (build := http.get(url).json())["status"] in ("QUEUED", "WORKING"):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                return dict(build)

            failed = ended(allow_failure=False)
            assert failed["status"] == "FAILURE" and '"progress"' in failed["statusDetail"]
            assert ended(allow_failure=True)["status"] == "SUCCESS"
    finally:
        standin.stop()
