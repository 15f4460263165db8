"""Reading cloudbuild.yaml and the repository the way Cloud Build and gcloud do, for the
deployment tests (tests/unit/test_deploy*.py). Nothing here reaches Google."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from common.runtime import Runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLOUDBUILD = ROOT / "cloudbuild.yaml"
UUID = "6f1c2c9e-8a3b-4d2e-9f10-1234567890ab"
# Cloud Build's own substitutions (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
BUILTIN_SUBSTITUTIONS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
SAMPLE_BUILTINS = {"PROJECT_ID": "demo-project", "PROJECT_NUMBER": "123456789012", "BUILD_ID": "b-1"}
_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z0-9_]+)")


@functools.cache
def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    return loaded


def strings(node: Any) -> Iterator[str]:
    """Every string in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def references(text: str) -> list[str]:
    """The substitution names Cloud Build would replace in ``text`` ($$ is a literal $)."""
    return [m.group(1) or m.group(2) for m in _REFERENCE.finditer(text) if m.group(0) != "$$"]


def substitute(text: str, values: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return values[m.group(1) or m.group(2)]

    return _REFERENCE.sub(repl, text)


def sample_substitutions() -> dict[str, str]:
    return {**SAMPLE_BUILTINS, **{k: str(v) for k, v in build()["substitutions"].items()}}


def deploy_steps() -> dict[str, list[str]]:
    """Function name -> the gcloud arguments of the step that deploys it."""
    found: dict[str, list[str]] = {}
    for step in build()["steps"]:
        args = [str(a) for a in step.get("args", [])]
        if step.get("entrypoint") == "gcloud" and args[:2] == ["functions", "deploy"]:
            assert args[2] not in found, f"{args[2]} is deployed twice"
            found[args[2]] = args
    return found


def flag_values(args: Iterable[str], name: str) -> list[str]:
    prefix = f"--{name}="
    return [a[len(prefix) :] for a in args if a.startswith(prefix)]


def flag(args: list[str], name: str) -> str:
    values = flag_values(args, name)
    assert len(values) == 1, f"--{name} given {len(values)} times in {args[:3]}"
    return values[0]


def env_vars(args: Iterable[str], name: str = "set-env-vars") -> dict[str, str]:
    """--set-env-vars flags merged as gcloud merges them (repeats add keys; '^D^' sets the separator)."""
    merged: dict[str, str] = {}
    for raw in flag_values(args, name):
        separator, value = ",", raw
        found = re.match(r"^\^(.+?)\^", raw)
        if found:
            separator, value = found.group(1), raw[found.end() :]
        for item in value.split(separator):
            key, _, val = item.partition("=")
            assert key not in merged, f"{key} set twice"
            merged[key] = val
    return merged


def step(step_id: str) -> dict[str, Any]:
    matches = [s for s in build()["steps"] if s.get("id") == step_id]
    assert len(matches) == 1, step_id
    found: dict[str, Any] = matches[0]
    return found


def step_env(step_id: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in step(step_id).get("env", []))


def function_app(target: str, runtime: Runtime) -> Any:
    """The Flask app functions-framework serves for ``target`` (its own URL rules, through its
    _configure_app), around the entry point main.py builds, with ``runtime`` as the instance's."""
    import flask
    import functions_framework

    from functions.entry import entrypoint, unrouted

    app = flask.Flask(target)
    functions_framework._configure_app(app, entrypoint(target, lambda: runtime), "http")  # type: ignore[no-untyped-call]
    app.register_error_handler(404, unrouted(lambda: runtime))
    app.register_error_handler(405, unrouted(lambda: runtime))
    return app


def main_py_answers(env: dict[str, str], targets: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Load main.py under the real functions-framework once per target, in a child process given
    ``env`` (as Cloud Functions starts an instance), and answer one request each: status, type, JSON."""
    probe = """
import json, sys
import functions_framework
answers = {}
for target, method, path in json.loads(sys.argv[1]):
    app = functions_framework.create_app(target, sys.argv[2])
    response = app.test_client().open(path, method=method)
    body = response.get_json(silent=True)
    answers[target] = {"status": response.status_code, "mimetype": response.mimetype, "json": body}
print(json.dumps(answers))
"""
    requests = [[t, *request_for(t)] for t in targets]
    child_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **env}
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(requests), str(ROOT / "main.py")],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    answers: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


def request_for(function: str) -> tuple[str, str]:
    """One request each function answers without a user: its first route, with sample ids."""
    from functions.routes import routes_of

    if function == "healthz":
        return "GET", "/healthz"
    if function == "openapi":
        return "GET", "/openapi.json"
    route = routes_of(function)[0]
    return route.method, sample_path(route.path)


def internal_functions() -> set[str]:
    """Functions all of whose routes are Cloud Tasks / Cloud Scheduler targets."""
    from functions.routes import FUNCTIONS, routes_of

    return {f for f in FUNCTIONS if all(r.auth == "internal" for r in routes_of(f))}


def secure_runtime() -> Runtime:
    """The production runtime under the suite's settings with no database (functions answer 401 or 503)."""
    from common.runtime import build_runtime
    from tests.conftest import suite_settings

    return build_runtime(suite_settings())


def sample_path(path: str) -> str:
    return re.sub(r"\{\w+\}", UUID, path)


# --- What gcloud uploads --------------------------------------------------------------------

_SKIP_DIRS = {".git", ".venv", ".venv-emulator", ".local", ".deploy", "__pycache__", ".mypy_cache", ".ruff_cache"}


def repository_files() -> list[str]:
    """Files of the working tree (tracked and untracked, not git-ignored), relative to ROOT."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted(p for p in listed.split("\0") if p and (ROOT / p).is_file())
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".venv")]
        for name in filenames:
            found.append(str(pathlib.Path(dirpath, name).relative_to(ROOT)))
    return sorted(found)


def _glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
            continue
        else:
            out += re.escape(c)
        i += 1
    return out


def ignore_rules(text: str) -> list[tuple[bool, bool, re.Pattern[str]]]:
    """(negated, directories only, regex) per line of a .gcloudignore (gitignore syntax)."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.removeprefix("!")
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        body = _glob_regex(line.lstrip("/"))
        regex = re.compile(f"^{body}$" if anchored else f"^(?:.*/)?{body}$")
        rules.append((negated, dir_only, regex))
    return rules


def _excluded(path: str, is_dir: bool, rules: list[tuple[bool, bool, re.Pattern[str]]]) -> bool:
    result = False
    for negated, dir_only, regex in rules:
        if dir_only and not is_dir:
            continue
        if regex.match(path):
            result = not negated
    return result


def uploaded_files(ignore_text: str, files: Iterable[str] | None = None) -> list[str]:
    """The files gcloud would upload with this ignore file (a file under an ignored directory
    stays ignored, as in git)."""
    rules = ignore_rules(ignore_text)
    kept = []
    for path in files if files is not None else repository_files():
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        if any(_excluded(p, True, rules) for p in parents) or _excluded(path, False, rules):
            continue
        kept.append(path)
    return sorted(kept)


def gcloud() -> str | None:
    return shutil.which("gcloud")


def gcloud_env(config_dir: pathlib.Path) -> dict[str, str]:
    """An environment in which gcloud has no account: it parses, then stops before any request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
    env.update(
        CLOUDSDK_CONFIG=str(config_dir),
        CLOUDSDK_CORE_PROJECT="demo-project",  # as after the documented `gcloud config set project`
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="1",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
        # No metadata-server probe for credentials (this machine is not on Google Cloud).
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
        NO_GCE_CHECK="True",
    )
    return env


_BATCH_PROBE = """
import json, os, sys, tempfile
sdk = sys.argv[1]
sys.path[:0] = [os.path.join(sdk, "lib", "third_party"), os.path.join(sdk, "lib")]
from googlecloudsdk import gcloud_main
cli = gcloud_main.CreateCLI([])
results = []
saved_out, saved_err = os.dup(1), os.dup(2)
for args in json.loads(sys.stdin.read()):
    with tempfile.TemporaryFile() as capture:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(capture.fileno(), 1); os.dup2(capture.fileno(), 2)
        code = 0
        try:
            cli.Execute(args)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException as error:
            code = 1
            sys.stderr.write("%s: %s" % (type(error).__name__, error))
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved_out, 1); os.dup2(saved_err, 2)
        capture.seek(0)
        results.append([code, capture.read().decode(errors="replace")[:800]])
print(json.dumps(results))
"""


def _verdict(code: int, output: str) -> str | None:
    if code == 2 or "unrecognized arguments" in output or "Invalid value" in output:
        return output.strip()
    if code == 0:  # a local command (gcloud config set) ran
        return None
    if "active account" not in output and "credential" not in output.lower():
        return f"unexpected outcome {code}: {output.strip()[:500]}"
    return None


def gcloud_parse_errors(commands: list[list[str]], config_dir: pathlib.Path) -> list[str | None]:
    """For each command: None when the real gcloud accepts its arguments (it then stops for lack
    of an account, before any request), else gcloud's complaint. All commands go through one
    gcloud process (its own Python, its own CLI object), which takes seconds instead of minutes."""
    binary = gcloud()
    assert binary is not None
    sdk = pathlib.Path(os.path.realpath(binary)).parent.parent
    bundled = sdk / "platform" / "bundledpythonunix" / "bin" / "python3"
    python = os.environ.get("CLOUDSDK_PYTHON") or (str(bundled) if bundled.exists() else "python3")
    result = subprocess.run(
        [python, "-c", _BATCH_PROBE, str(sdk)],
        input=json.dumps(commands),
        env=gcloud_env(config_dir),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:  # an SDK laid out differently: one gcloud per command
        return [gcloud_parse_error(c, config_dir) for c in commands]
    return [_verdict(code, output) for code, output in json.loads(result.stdout.strip().splitlines()[-1])]


def gcloud_parse_error(args: list[str], config_dir: pathlib.Path) -> str | None:
    """The same verdict as gcloud_parse_errors, for one command run by the gcloud binary."""
    binary = gcloud()
    assert binary is not None
    result = subprocess.run(
        [binary, *args], env=gcloud_env(config_dir), capture_output=True, text=True, timeout=120, check=False
    )
    return _verdict(result.returncode, result.stderr)
