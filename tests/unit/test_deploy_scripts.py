"""The scripts cloudbuild.yaml runs (deploy/), against a stand-in gcloud that records what it is
asked and remembers what exists: a first run creates, a second run updates, nothing leaks a
secret. Every command they issue, and every gcloud command of docs/DEPLOY.md, is also handed to
the real gcloud's argument parser when gcloud is installed. The database bootstrap, migration
and grants run against the suite's PostgreSQL with separate deployer and runtime roles."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from common.auth import sign_body
from common.runtime import Runtime
from dev import gateway_config
from functions.routes import FUNCTIONS
from tests.conftest import with_settings
from tests.unit import deploy_support as ds

DEPLOY = ds.ROOT / "deploy"
SECRET = "rotated-signing-secret-for-this-test-only-0123456789"
FAKE_GCLOUD = textwrap.dedent(
    """
    import json, os, sys
    state_path = os.environ["FAKE_GCLOUD_STATE"]
    args = sys.argv[1:]
    with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    state = json.load(open(state_path)) if os.path.exists(state_path) else {}
    words = [a for a in args if not a.startswith("-")]
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    verbs = ("describe", "create", "update", "get-iam-policy")
    verb = next((w for w in words if w in verbs), None)
    if verb is None:
        sys.exit(0)
    group = " ".join(words[: words.index(verb)])
    rest = [w for w in words[words.index(verb) + 1 :] if w != "http"]
    key = group + ":" + rest[0]
    fmt = flags.get("format", "")
    if verb == "get-iam-policy":
        print("allUsers" if os.environ.get("FAKE_PUBLIC") else "serviceAccount:" + os.environ.get("INVOKER_SA", "x"))
    elif verb == "describe" and group == "run services":
        service = rest[0]
        url = "https://%s-%s.%s.run.app" % (service, os.environ["PROJECT_NUMBER"], os.environ["REGION"])
        annotations = {"run.googleapis.com/urls": json.dumps([url, "https://%s-abc123-uc.a.run.app" % service])}
        print(json.dumps({"metadata": {"annotations": annotations}, "status": {"url": url}}))
    elif verb == "describe":
        if key not in state:
            print("ERROR: NOT_FOUND: " + key, file=sys.stderr)
            sys.exit(1)
        values = {
            "value(state)": state[key].get("state", "RUNNING"),
            "value(managedService)": "planter-0a1b2c.apigateway.demo-project.cloud.goog",
            "value(apiConfig)": state[key].get("api-config", ""),
            "value(defaultHostname)": "planter-gw-0a1b2c.uc.gateway.dev",
            "value(name)": key,
        }
        print(values.get(fmt, key))
    else:
        entry = state.setdefault(key, {})
        if "api-config" in flags:
            entry["api-config"] = "projects/123/locations/global/apis/planter/configs/" + flags["api-config"]
        json.dump(state, open(state_path, "w"))
    """
)


class Gcloud:
    """A gcloud stand-in on PATH; ``calls`` are the argument lists it received."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        script = self.bin / "gcloud"
        script.write_text(f"#!{sys.executable}\n{FAKE_GCLOUD}", encoding="utf-8")
        script.chmod(0o755)
        self.log = root / "calls.jsonl"
        self.state = root / "state.json"

    def run(self, script: str, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_GCLOUD_LOG": str(self.log),
            "FAKE_GCLOUD_STATE": str(self.state),
            **env,
        }
        self.log.write_text("", encoding="utf-8")
        result = subprocess.run(
            ["bash", str(DEPLOY / script), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ds.ROOT,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line]

    def verbs(self) -> list[str]:
        return [" ".join(a for a in c if not a.startswith("-"))[:80] for c in self.calls]


@pytest.fixture
def gcloud(tmp_path: pathlib.Path) -> Gcloud:
    return Gcloud(tmp_path / "fake")


def _step_env(step_id: str) -> dict[str, str]:
    values = ds.sample_substitutions()
    return {k: ds.substitute(v, values) for k, v in ds.step_env(step_id).items()}


def _command_with(calls: list[list[str]], *words: str) -> list[str]:
    found = [c for c in calls if all(w in c for w in words)]
    assert len(found) == 1, (words, calls)
    return found[0]


# --- the build hands every script what it requires -----------------------------------------------


def test_each_script_step_provides_the_variables_its_script_requires() -> None:
    for s in ds.build()["steps"]:
        args = s.get("args", [])
        if s.get("entrypoint") != "bash" or not args or not str(args[0]).startswith("deploy/"):
            continue
        text = (ds.ROOT / args[0]).read_text(encoding="utf-8")
        required = set(re.findall(r'"\$\{([A-Za-z_]\w*):\?', text))
        provided = set(ds.step_env(s["id"])) | set(s.get("secretEnv", []))
        assert required <= provided, (s["id"], required - provided)


def test_scripts_are_valid_bash() -> None:
    for script in sorted(DEPLOY.glob("*.sh")):
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in script.read_text(encoding="utf-8")


# --- queue ----------------------------------------------------------------------------------------

RETRY_FLAGS = ("--max-attempts=10", "--min-backoff=10s", "--max-backoff=600s", "--max-doublings=5")


def test_queue_is_created_then_updated_with_the_same_retry_and_rate_configuration(gcloud: Gcloud) -> None:
    env = _step_env("queue")
    gcloud.run("queues.sh", env=env)
    first = gcloud.calls
    create = _command_with(first, "queues", "create")
    gcloud.run("queues.sh", env=env)
    update = _command_with(gcloud.calls, "queues", "update")
    assert not [c for c in gcloud.calls if "create" in c]
    for command in (create, update):
        for expected in (*RETRY_FLAGS, "--max-retry-duration=0s", "--max-concurrent-dispatches=8"):
            assert expected in command, (expected, command)
        assert "--max-dispatches-per-second=20" in command
        assert f"--location={env['REGION']}" in command and "planter-steps" in command
    assert sorted(create[3:]) == sorted(update[3:])


def test_a_paused_queue_is_reported_not_resumed(gcloud: Gcloud) -> None:
    env = _step_env("queue")
    gcloud.state.write_text(json.dumps({"tasks queues:planter-steps": {"state": "PAUSED"}}), encoding="utf-8")
    result = gcloud.run("queues.sh", env=env)
    assert "PAUSED" in result.stderr
    assert not [c for c in gcloud.calls if "resume" in c]


def test_one_queue_per_priority_with_the_high_queue_holding_the_head_start(gcloud: Gcloud) -> None:
    env = _step_env("queue")
    assert ds.step("queue")["args"] == ["deploy/priority_queues.sh"]
    gcloud.run("priority_queues.sh", env=env)
    created = [c for c in gcloud.calls if "create" in c]
    by_queue = {c[3]: c for c in created}
    capacity = int(env["MAX_CONCURRENT_DISPATCHES"])
    queue = env["QUEUE"]
    limits = {
        name: int(next(a.split("=")[1] for a in c if a.startswith("--max-concurrent-dispatches=")))
        for name, c in by_queue.items()
    }
    # The names the functions derive from TASKS_QUEUE (common/config.py), each with its share.
    assert limits == {f"{queue}-high": capacity, queue: capacity // 2, f"{queue}-low": capacity // 4}
    # Normal and low together leave high at least a quarter of pipeline_step, however deep their backlog.
    assert limits[queue] + limits[f"{queue}-low"] <= capacity * 3 // 4
    for command in created:
        for expected in RETRY_FLAGS:
            assert expected in command, (expected, command)


# --- scheduler ------------------------------------------------------------------------------------


def _scheduler_env() -> dict[str, str]:
    return {**_step_env("scheduler"), "STEP_SIGNING_SECRET": SECRET + "\n"}


def _headers(command: list[str]) -> dict[str, str]:
    value = next(a.split("=", 1)[1] for a in command if a.startswith(("--headers=", "--update-headers=")))
    return dict(item.split("=", 1) for item in value.split(","))


def test_scheduler_job_is_created_then_updated_with_a_valid_signature(gcloud: Gcloud) -> None:
    env = _scheduler_env()
    first = gcloud.run("scheduler.sh", env=env)
    create = _command_with(gcloud.calls, "jobs", "create")
    second = gcloud.run("scheduler.sh", env=env)
    update = _command_with(gcloud.calls, "jobs", "update")
    for command in (create, update):
        assert "http" in command and "planter-tick" in command
        assert "--message-body={}" in command
        assert "--http-method=POST" in command
        assert f"--uri={env['TICK_URL']}" in command
        assert f"--oidc-service-account-email={env['INVOKER_SA']}" in command
        assert f"--oidc-token-audience={env['AUDIENCE']}" in command
        assert "--schedule=* * * * *" in command
        headers = _headers(command)
        # The same bytes the app verifies (the secret is read stripped, as common/config.py does).
        assert headers["X-Planter-Signature"] == sign_body(b"{}", SECRET)
        assert headers["Content-Type"] == "application/json"
    for output in (first, second):
        assert SECRET not in output.stdout + output.stderr
        assert sign_body(b"{}", SECRET) not in output.stdout + output.stderr
    assert not any(SECRET in arg for call in gcloud.calls for arg in call)


def test_scheduler_refuses_to_run_without_the_secret(gcloud: Gcloud) -> None:
    env = {k: v for k, v in _scheduler_env().items() if k != "STEP_SIGNING_SECRET"}
    result = gcloud.run("scheduler.sh", env=env, check=False)
    assert result.returncode != 0
    assert gcloud.calls == []


def test_the_tick_the_scheduler_sends_is_accepted(gcloud: Gcloud, runtime: Runtime) -> None:
    gcloud.run("scheduler.sh", env=_scheduler_env())
    headers = _headers(_command_with(gcloud.calls, "jobs", "create"))
    app = ds.function_app("scheduler_tick", with_settings(runtime, step_signing_secret=SECRET))
    path = "/internal/scheduler/tick"
    accepted = app.test_client().post(path, data=b"{}", headers=headers)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert set(accepted.get_json()) >= {"reenqueued", "failed"}
    forged = {**headers, "X-Planter-Signature": sign_body(b"{}", "another-secret-of-enough-length-0123456789")}
    assert app.test_client().post(path, data=b"{}", headers=forged).status_code == 401
    assert app.test_client().post(path, data=b'{"x": 1}', headers=headers).status_code == 401


# --- internal access, URLs --------------------------------------------------------------------------


def test_internal_functions_get_one_invoker_and_the_shared_audience(gcloud: Gcloud) -> None:
    env = _step_env("internal-access")
    args = ds.step("internal-access")["args"][1:]
    gcloud.run("internal_access.sh", *args, env=env)
    for function in args:
        binding = _command_with(gcloud.calls, "add-invoker-policy-binding", function)
        assert f"--member=serviceAccount:{env['INVOKER_SA']}" in binding
        service = function.replace("_", "-")
        audience = _command_with(gcloud.calls, "services", "update", service)
        assert f"--set-custom-audiences={env['AUDIENCE']}" in audience
    refused = gcloud.run("internal_access.sh", *args, env={**env, "FAKE_PUBLIC": "1"}, check=False)
    assert refused.returncode == 1 and "must be private" in refused.stderr


def test_url_check_accepts_the_deterministic_urls(gcloud: Gcloud) -> None:
    env = _step_env("check-urls")
    args = ds.step("check-urls")["args"][1:]
    assert args == list(FUNCTIONS)
    result = gcloud.run("check_urls.sh", *args, env=env)
    for function in FUNCTIONS:
        expected = gateway_config.run_url(function, env["PROJECT_NUMBER"], env["REGION"])
        assert f"{function}: {expected}" in result.stdout


# --- gateway -----------------------------------------------------------------------------------------


@pytest.fixture
def healthy_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_gateway_is_created_once_and_updated_only_when_the_spec_changes(
    gcloud: Gcloud, tmp_path: pathlib.Path, healthy_server: str
) -> None:
    spec = tmp_path / "gateway.yaml"
    assert (
        gateway_config.main(["--project-number", "123456789012", "--region", "us-central1", "--output", str(spec)]) == 0
    )
    config_id = "planter-" + gateway_config.config_digest(spec.read_text(encoding="utf-8"))
    env = {**_step_env("gateway"), "SMOKE_BASE_URL": healthy_server, "SMOKE_INTERVAL": "0"}

    first = gcloud.run("gateway.sh", str(spec), env=env)
    assert "smoke: GET" in first.stdout and "-> 200" in first.stdout
    calls = gcloud.calls
    _command_with(calls, "apis", "create", "planter")
    enable = _command_with(calls, "services", "enable")
    assert "planter-0a1b2c.apigateway.demo-project.cloud.goog" in enable
    create = _command_with(calls, "api-configs", "create", config_id)
    assert f"--openapi-spec={spec}" in create and f"--backend-auth-service-account={env['GATEWAY_SA']}" in create
    gateway = _command_with(calls, "gateways", "create", "planter")
    assert f"--api-config={config_id}" in gateway and f"--location={env['GATEWAY_REGION']}" in gateway

    gcloud.run("gateway.sh", str(spec), env=env)
    assert not [c for c in gcloud.calls if "create" in c or "update" in c]

    spec.write_text(spec.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    gcloud.run("gateway.sh", str(spec), env=env)
    changed = "planter-" + gateway_config.config_digest(spec.read_text(encoding="utf-8"))
    _command_with(gcloud.calls, "api-configs", "create", changed)
    assert f"--api-config={changed}" in _command_with(gcloud.calls, "gateways", "update")


def test_gateway_smoke_test_fails_the_build_when_healthz_does_not_answer(
    gcloud: Gcloud, tmp_path: pathlib.Path, healthy_server: str
) -> None:
    spec = tmp_path / "gateway.yaml"
    spec.write_text("swagger: '2.0'\n", encoding="utf-8")
    env = {**_step_env("gateway"), "SMOKE_BASE_URL": healthy_server, "SMOKE_PATH": "/missing"}
    result = gcloud.run("gateway.sh", str(spec), env={**env, "SMOKE_ATTEMPTS": "2", "SMOKE_INTERVAL": "0"}, check=False)
    assert result.returncode == 1 and "did not answer 200" in result.stderr


# --- the real gcloud parser --------------------------------------------------------------------------


def _script_commands(tmp_path: pathlib.Path, healthy_server: str) -> list[list[str]]:
    fake = Gcloud(tmp_path / "fake-all")
    spec = tmp_path / "gateway.yaml"
    gateway_config.main(["--project-number", "123456789012", "--region", "us-central1", "--output", str(spec)])
    commands: list[list[str]] = []
    runs = [
        ("queues.sh", [], _step_env("queue")),
        ("scheduler.sh", [], _scheduler_env()),
        ("internal_access.sh", ds.step("internal-access")["args"][1:], _step_env("internal-access")),
        ("check_urls.sh", ds.step("check-urls")["args"][1:], _step_env("check-urls")),
        ("gateway.sh", [str(spec)], {**_step_env("gateway"), "SMOKE_BASE_URL": healthy_server}),
    ]
    for _ in range(2):  # first run creates, second updates
        for script, args, env in runs:
            fake.run(script, *args, env=env)
            commands += fake.calls
    unique = {json.dumps(c): c for c in commands}
    return list(unique.values())


def test_script_commands_parse_with_the_real_gcloud(tmp_path: pathlib.Path, healthy_server: str) -> None:
    if ds.gcloud() is None:
        pytest.skip("gcloud is not installed here")
    commands = _script_commands(tmp_path, healthy_server)
    assert len(commands) > 15
    errors = ds.gcloud_parse_errors(list(commands), tmp_path / "gcloud")
    assert [(c, e) for c, e in zip(commands, errors, strict=True) if e] == []


_DOC_SAMPLE_ENV = {
    "PROJECT_ID": "demo-project",
    "PROJECT_NUMBER": "123456789012",
    "REGION": "us-central1",
    "BILLING_ACCOUNT": "000000-000000-000000",
    "DEPLOYER": "planter-deployer@demo-project.iam.gserviceaccount.com",
    "RUNTIME": "planter-runtime@demo-project.iam.gserviceaccount.com",
    "INVOKER": "planter-invoker@demo-project.iam.gserviceaccount.com",
    "GATEWAY": "planter-gateway@demo-project.iam.gserviceaccount.com",
    "role": "roles/viewer",
    "sa": "planter-runtime@demo-project.iam.gserviceaccount.com",
}


def deploy_doc_commands() -> list[list[str]]:
    """Every gcloud command in the bash blocks of docs/DEPLOY.md, variables expanded."""
    text = (ds.ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            for segment in re.split(r"\s\|\s", line.strip()):
                if not segment.startswith("gcloud "):
                    continue
                used = set(re.findall(r"\$\{(\w+)\}", segment))
                assert used <= _DOC_SAMPLE_ENV.keys(), segment
                expanded = re.sub(r"\$\{(\w+)\}", lambda m: _DOC_SAMPLE_ENV[m.group(1)], segment)
                words = shlex.split(expanded)
                cut = next((i for i, w in enumerate(words) if w[0] in ">;&|" or w == "done"), len(words))
                commands.append(words[1:cut])
    return commands


def test_deploy_doc_defines_every_variable_its_commands_use() -> None:
    text = (ds.ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    exported = set(re.findall(r"^export (\w+)=", text, re.MULTILINE)) | {"role", "sa"}
    used = set(re.findall(r"\$\{(\w+)\}", "\n".join(re.findall(r"```bash\n(.*?)```", text, re.DOTALL))))
    assert used <= exported, used - exported
    assert len(deploy_doc_commands()) > 30


def test_deploy_doc_commands_parse_with_the_real_gcloud(tmp_path: pathlib.Path) -> None:
    if ds.gcloud() is None:
        pytest.skip("gcloud is not installed here")
    # `gcloud auth ... login` opens a browser flow; it has nothing to parse.
    commands = {json.dumps(c): c for c in deploy_doc_commands() if c[0] != "auth"}
    errors = ds.gcloud_parse_errors(list(commands.values()), tmp_path / "gcloud")
    assert [(c[:3], e) for c, e in zip(commands.values(), errors, strict=True) if e] == []
