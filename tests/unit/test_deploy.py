"""The deployment, checked without Google: cloudbuild.yaml parses, uses only defined
substitutions and deploys exactly the functions of the route table with the right flags (and
the real gcloud accepts them); the connection arithmetic holds; each entry point loads and
answers under functions-framework, also from exactly the files gcloud uploads.

Siblings: test_deploy_gateway.py (one route table: local gateway, /openapi.json, API Gateway
config), test_deploy_scripts.py (deploy/*.sh against a stand-in gcloud, docs/DEPLOY.md's
commands), test_deploy_database.py (bootstrap, migrations, grants), test_deploy_secrets.py."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import main
from dev import gateway_config
from functions.routes import FUNCTIONS, ROUTES
from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET
from tests.unit import deploy_support as ds

INTERNAL = ds.internal_functions()
# Connections one request can hold at once: the step's heartbeat overlaps its own transaction;
# /openapi.json and the web page never touch the database.
CONNECTIONS_PER_REQUEST = {"pipeline_step": 2, "openapi": 0, "web": 0}
# Functions whose requests are long-lived streams that hold a connection only for one short read
# per poll (docs/DESIGN.md "Live updates"): their streams share this many pooled connections.
SHARED_POOL = {"events": 4}
# docs/DEPLOY.md: the Cloud SQL instance's max_connections flag, and what is kept back from the
# functions for migrations, admin sessions and Cloud SQL's own (superuser-reserved) connections.
MAX_CONNECTIONS = 100
RESERVED_CONNECTIONS = 10


# --- cloudbuild.yaml --------------------------------------------------------------------------


def test_cloudbuild_parses_into_test_migrate_deploy() -> None:
    build = ds.build()
    ids = [s["id"] for s in build["steps"]]
    assert ids[0] == "test"
    assert ds.step("test")["args"] == ["test"] and ds.step("test")["entrypoint"] == "make"
    assert len(ids) == len(set(ids))
    for function in FUNCTIONS:
        assert set(ds.step(f"deploy-{function}")["waitFor"]) == {"migrate", "queue"}
    assert ds.step("migrate")["waitFor"] == ["test"]
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert int(build["timeout"].rstrip("s")) >= 1800
    known = set(ids)
    for s in build["steps"]:
        assert set(s.get("waitFor", [])) <= known | {"-"}, s["id"]


def test_every_substitution_used_is_defined() -> None:
    build = ds.build()
    defined = set(build["substitutions"])
    assert all(name.startswith("_") for name in defined), "user substitutions must start with '_'"
    used: set[str] = set()
    for text in ds.strings({k: v for k, v in build.items() if k != "substitutions"}):
        for name in ds.references(text):
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"${{{name}}} in {text!r}: escape shell variables as $$"
            used.add(name)
    assert used - defined - ds.BUILTIN_SUBSTITUTIONS == set()
    assert defined - used == set(), "substitutions nobody uses"


def test_every_entry_point_named_exists_in_main() -> None:
    text = ds.CLOUDBUILD.read_text(encoding="utf-8")
    named = set(re.findall(r"--entry-point=(\w+)", text))
    assert named == set(FUNCTIONS)
    for name in named:
        assert callable(getattr(main, name)), name


def test_the_build_deploys_exactly_the_functions_of_the_route_table() -> None:
    steps = ds.deploy_steps()
    assert set(steps) == set(FUNCTIONS)
    for name, args in steps.items():
        assert ds.flag(args, "entry-point") == name
        for fixed in ("--gen2", "--trigger-http", "--runtime=python312", "--source=.", "--region=${_REGION}"):
            assert fixed in args, (name, fixed)


def test_internal_functions_are_private_and_browser_facing_ones_public() -> None:
    assert {"pipeline_step", "scheduler_tick", "admin"} == INTERNAL
    for name, args in ds.deploy_steps().items():
        private = "--no-allow-unauthenticated" in args
        public = "--allow-unauthenticated" in args
        assert private != public, name
        assert private == (name in INTERNAL), name
    assert ds.step("internal-access")["args"][1:] == sorted(INTERNAL, key=list(FUNCTIONS).index)


def test_secrets_come_from_secret_manager_never_literals() -> None:
    for name, args in ds.deploy_steps().items():
        secrets = ds.env_vars(args, "set-secrets")
        assert secrets == {
            "JWT_SECRET": "${_JWT_SECRET}:latest",
            "STEP_SIGNING_SECRET": "${_STEP_SECRET}:latest",
            "GITHUB_APP_PRIVATE_KEY": "${_GITHUB_APP_KEY_SECRET}:latest",
        }
        env = ds.env_vars(args)
        assert env["STEP_PROVIDER"] == "${_STEP_PROVIDER}" and ds.build()["substitutions"]["_STEP_PROVIDER"] == "live"
        assert not {k for k in env if re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE|KEY$", k)}, name
        assert env["PLANTER_ENV"] == "production"
        assert env["DB_IAM_AUTH"] == "true" and "DB_PASSWORD" not in env
        assert env["VERIFY_OIDC"] == "true"
    secret_env = {s["env"] for s in ds.build()["availableSecrets"]["secretManager"]}
    assert secret_env == {"STEP_SIGNING_SECRET"}
    for s in ds.build()["steps"]:
        for item in s.get("env", []):
            assert not re.match(r"\w*(SECRET|PASSWORD|TOKEN)\w*=", item), f"{s['id']}: {item} must be a secretEnv"


def test_every_function_gets_the_same_configuration_but_its_sizing() -> None:
    envs = {name: ds.env_vars(args) for name, args in ds.deploy_steps().items()}
    sizing = {"THREADS", "DB_POOL_SIZE", "DB_MAX_OVERFLOW"}
    shared = {k: v for k, v in envs["api_projects"].items() if k not in sizing}
    for name, env in envs.items():
        assert {k: v for k, v in env.items() if k not in sizing} == shared, name
        assert sizing <= env.keys(), name
    values = ds.sample_substitutions()
    assert ds.substitute(shared["STEP_URL"], values) == (
        gateway_config.run_url("pipeline_step", "123456789012", "us-central1") + "/internal/steps"
    )
    assert ds.substitute(shared["TASKS_OIDC_AUDIENCE"], values) == gateway_config.run_url(
        "pipeline_step", "123456789012", "us-central1"
    )
    assert ds.step_env("scheduler")["AUDIENCE"] == shared["TASKS_OIDC_AUDIENCE"]
    assert ds.step_env("internal-access")["AUDIENCE"] == shared["TASKS_OIDC_AUDIENCE"]
    assert ds.step_env("scheduler")["INVOKER_SA"] == shared["TASKS_OIDC_SERVICE_ACCOUNT"]
    tick = next(r for r in ROUTES if r.function == "scheduler_tick")
    assert ds.substitute(ds.step_env("scheduler")["TICK_URL"], values) == (
        gateway_config.run_url("scheduler_tick", "123456789012", "us-central1") + tick.path
    )
    # The production settings these values make are accepted by common/config.py.
    settings = {k: ds.substitute(v, values) for k, v in shared.items()}
    assert settings["INSTANCE_CONNECTION_NAME"].count(":") == 2
    assert settings["DB_USER"].endswith(".iam"), "an IAM service-account database user drops .gserviceaccount.com"


def _sizing(name: str, args: list[str]) -> dict[str, int]:
    env = ds.env_vars(args)
    return {
        "concurrency": int(ds.flag(args, "concurrency")),
        "threads": int(env["THREADS"]),
        "pool": int(env["DB_POOL_SIZE"]),
        "overflow": int(env["DB_MAX_OVERFLOW"]),
        "max_instances": int(ds.flag(args, "max-instances")),
        "cpu": int(ds.flag(args, "cpu")),
    }


def test_connection_arithmetic_stays_under_the_cloud_sql_limit() -> None:
    total = 0
    sizes = {name: _sizing(name, args) for name, args in ds.deploy_steps().items()}
    for name, s in sizes.items():
        # gunicorn serves THREADS requests at once; Cloud Run must not send more than that.
        assert s["threads"] == s["concurrency"], name
        # Concurrency above 1 needs a whole CPU on Cloud Functions (2nd gen).
        assert s["concurrency"] == 1 or s["cpu"] >= 1, name
        # Every request in flight gets its connection(s) without waiting on the pool.
        per_request = CONNECTIONS_PER_REQUEST.get(name, 1)
        if name in SHARED_POOL:
            assert s["pool"] + s["overflow"] == SHARED_POOL[name], name
        else:
            assert s["pool"] + s["overflow"] >= s["concurrency"] * per_request, name
        total += s["max_instances"] * (s["pool"] + s["overflow"])
    assert total <= MAX_CONNECTIONS - RESERVED_CONNECTIONS, total
    # The queue never pushes more steps at once than pipeline_step can take.
    step = sizes["pipeline_step"]
    assert int(ds.step_env("queue")["MAX_CONCURRENT_DISPATCHES"]) == step["max_instances"] * step["concurrency"]
    # The table written in cloudbuild.yaml's header is the configuration.
    text = ds.CLOUDBUILD.read_text(encoding="utf-8")
    rows = re.findall(r"^#\s+(\w+)\s+(\d+)\s+(\d+)\+(\d+)\s+(\d+)\s+(\d+)", text, re.MULTILINE)
    assert {r[0] for r in rows} == set(FUNCTIONS)
    for name, conc, pool, overflow, maxi, conns in rows:
        s = sizes[name]
        assert (int(conc), int(pool), int(overflow), int(maxi)) == (
            s["concurrency"],
            s["pool"],
            s["overflow"],
            s["max_instances"],
        ), name
        assert int(conns) == s["max_instances"] * (s["pool"] + s["overflow"]), name
    assert f"= {total} <= {MAX_CONNECTIONS - RESERVED_CONNECTIONS}" in text
    deploy_md = (ds.ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    assert f"max_connections={MAX_CONNECTIONS}" in deploy_md
    assert str(total) in deploy_md


def test_the_gcloud_parse_check_tells_bad_arguments_from_good(tmp_path: pathlib.Path) -> None:
    if ds.gcloud() is None:
        pytest.skip("gcloud is not installed here")
    good = ["tasks", "queues", "update", "q", "--location=us-central1", "--max-attempts=3"]
    unknown_flag = ["functions", "deploy", "f", "--gen2", "--region=us-central1", "--no-such-flag"]
    bad_value = ["tasks", "queues", "update", "q", "--location=us-central1", "--max-attempts=many"]
    twice = ["functions", "deploy", "f", "--gen2", "--region=us-central1", "--set-env-vars=A=1", "--set-env-vars=A=2"]
    verdicts = ds.gcloud_parse_errors([good, unknown_flag, bad_value, twice], tmp_path / "gcloud")
    assert verdicts[0] is None
    assert all(verdicts[1:]), verdicts


def test_build_gcloud_commands_parse_with_the_real_gcloud(tmp_path: pathlib.Path) -> None:
    if ds.gcloud() is None:
        pytest.skip("gcloud is not installed here")
    values = ds.sample_substitutions()
    commands = [[ds.substitute(a, values) for a in args] for args in ds.deploy_steps().values()]
    errors = ds.gcloud_parse_errors(list(commands), tmp_path / "gcloud")
    assert [(c[2], e) for c, e in zip(commands, errors, strict=True) if e] == []


# --- functions-framework --------------------------------------------------------------------


@pytest.fixture(scope="module")
def main_py_answers() -> dict[str, dict[str, Any]]:
    """Every function of main.py loaded under functions-framework in a child process whose
    environment has real secrets and no database."""
    from tests.conftest import TEST_JWT_SECRET, TEST_STEP_SECRET

    env = {"PLANTER_ENV": "test", "JWT_SECRET": TEST_JWT_SECRET, "STEP_SIGNING_SECRET": TEST_STEP_SECRET}
    return ds.main_py_answers({**env, "STEP_PROVIDER": "simulated"}, FUNCTIONS)


@pytest.mark.parametrize("target", FUNCTIONS)
def test_each_entry_point_loads_and_answers_under_functions_framework(
    target: str, main_py_answers: dict[str, dict[str, Any]]
) -> None:
    response = main_py_answers[target]
    if target == "openapi":
        assert response["status"] == 200
        assert response["json"]["openapi"].startswith("3.")
    elif target == "web":
        assert response["status"] == 200
        assert response["mimetype"] == "text/html"
    elif target == "healthz":
        # No database here: the function loaded and answered, and says so.
        assert response["status"] == 503
        assert response["json"]["database"] == "unreachable"
    else:
        assert response["status"] == 401, response
        assert response["mimetype"] == "application/problem+json"


def test_healthz_entry_point_reaches_the_database(database_url: str) -> None:
    env = {"PLANTER_ENV": "test", "DATABASE_URL": database_url}
    assert ds.main_py_answers(env, ["healthz"])["healthz"]["json"] == {"status": "ok", "database": "ok"}


_UPLOADED_PROBE = textwrap.dedent(
    """
    import ast, importlib, json, pathlib, sys
    from importlib import metadata
    before = set(sys.modules)
    import functions_framework
    source = pathlib.Path(sys.argv[1])
    requests = json.loads(sys.argv[2])
    answers = {}
    for target, (method, path) in requests.items():
        app = functions_framework.create_app(target, str(source / "main.py"))
        response = app.test_client().open(path, method=method)
        answers[target] = [response.status_code, response.mimetype]
    # What production imports lazily (the connector, the Cloud Tasks client, OIDC checks):
    # every import statement of the uploaded code, wherever it sits.
    failed = []
    for file in sorted(source.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                try:
                    importlib.import_module(name)
                except ImportError as error:
                    failed.append(f"{file.relative_to(source)}: {name}: {error}")
    owner = {}
    for dist in metadata.distributions():
        for f in dist.files or []:
            owner[str(pathlib.Path(dist.locate_file(f)).resolve())] = dist.metadata["Name"]
    used = set()
    for name in set(sys.modules) - before:
        path = getattr(sys.modules[name], "__file__", None)
        if path and str(pathlib.Path(path).resolve()) in owner:
            used.add(owner[str(pathlib.Path(path).resolve())])
    import common, functions
    answers["_loaded_from"] = [str(pathlib.Path(m.__file__).parent.parent) for m in (common, functions)]
    answers["_import_failures"] = failed
    answers["_distributions"] = sorted(used)
    print(json.dumps(answers))
    """
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """requirements.txt and everything it pulls in (extras and markers evaluated here)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    queue = [
        Requirement(line.split("#")[0].strip())
        for line in (ds.ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    seen: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement = queue.pop()
        key = (_normalise(requirement.name), frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key[0])
        extras = ["", *sorted(requirement.extras)]
        for raw in dist.requires or []:
            child = Requirement(raw)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                queue.append(child)
    return seen


# httpx imports its command-line tool when its packages happen to be installed (a try/except
# ImportError in httpx/__init__.py); pytest brings pygments here, production does without it.
OPTIONAL_WHEN_INSTALLED = {"pygments", "rich"}


def test_the_uploaded_source_alone_serves_every_function(tmp_path: pathlib.Path) -> None:
    upload = tmp_path / "upload"
    for rel in ds.uploaded_files((ds.ROOT / ".gcloudignore").read_text(encoding="utf-8")):
        (upload / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ds.ROOT / rel, upload / rel)
    requests = {f: ds.request_for(f) for f in FUNCTIONS}
    env = {
        "PATH": "/usr/bin:/bin",
        "PLANTER_ENV": "test",
        "JWT_SECRET": TEST_JWT_SECRET,
        "STEP_SIGNING_SECRET": TEST_STEP_SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-I", "-c", _UPLOADED_PROBE, str(upload), json.dumps(requests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers.pop("_loaded_from") == [str(upload), str(upload)]
    assert answers.pop("_import_failures") == []
    # Nothing the functions import comes from a development-only package.
    used = {_normalise(d) for d in answers.pop("_distributions")}
    assert used, "no distribution seen: the probe is broken"
    assert used - runtime_closure() - OPTIONAL_WHEN_INSTALLED == set()
    expected = {f: [401, "application/problem+json"] for f in FUNCTIONS}
    expected["openapi"] = [200, "application/json"]
    expected["web"] = [200, "text/html"]
    expected["healthz"] = [503, "application/json"]
    assert answers == expected


# --- what gcloud uploads ----------------------------------------------------------------------


def test_gcloudignore_uploads_the_runtime_and_nothing_else() -> None:
    files = ds.uploaded_files((ds.ROOT / ".gcloudignore").read_text(encoding="utf-8"))
    top = {f.split("/")[0] for f in files}
    assert top == {"main.py", "requirements.txt", "functions", "common"}
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    for module in ("functions/routes.py", "functions/entry.py", "common/db.py", "common/http.py"):
        assert module in files


def test_build_ignore_file_keeps_what_the_build_needs() -> None:
    files = ds.uploaded_files((ds.ROOT / "deploy" / "build.gcloudignore").read_text(encoding="utf-8"))
    top = {f.split("/")[0] for f in files}
    for needed in ("tests", "dev", "deploy", "migrations", "Makefile", "alembic.ini", "requirements-dev.txt"):
        assert needed in top, needed
    assert "cloudbuild.yaml" in files
    assert not top & {".git", ".venv", ".venv-emulator", ".local", ".deploy"}


@pytest.mark.parametrize("ignore_file", [".gcloudignore", "deploy/build.gcloudignore"])
def test_ignore_rules_match_gcloud_itself(ignore_file: str, tmp_path: pathlib.Path) -> None:
    if ds.gcloud() is None:
        pytest.skip("gcloud is not installed here")
    files = ds.repository_files()
    tree = tmp_path / "tree"
    for rel in files:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"")
    (tree / ".gcloudignore").write_text((ds.ROOT / ignore_file).read_text(encoding="utf-8"), encoding="utf-8")
    listed = subprocess.run(
        [ds.gcloud() or "gcloud", "meta", "list-files-for-upload", str(tree)],
        env=ds.gcloud_env(tmp_path / "gcloud"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    by_gcloud = sorted(str(pathlib.Path(p).relative_to(tree)) if p.startswith("/") else p for p in listed)
    ours = ds.uploaded_files((tree / ".gcloudignore").read_text(encoding="utf-8"), {*files, ".gcloudignore"})
    assert by_gcloud == ours
