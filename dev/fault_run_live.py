"""The fault run's second phase: pipelines through the LIVE providers, against the local stand-ins.

A stack runs one STEP_PROVIDER, so this phase starts its own LocalStack with STEP_PROVIDER=live
(GitHub, Gemini and Google Cloud stand-ins; the Cloud Build stand-in is the outside worker that
posts the `deploying` step's progress and outcome callbacks). While its pipelines run it:

- tells the Cloud Build stand-in to lose the final outcome callback of some builds
  (`lose_final_callback`): only the scheduled check (GCP_BUILD_CHECK_SECONDS later) can end those;
- posts duplicate deliveries of the tasks' current steps (waiting `deploying` steps included);
- SIGKILLs the functions while a `deploying` step waits for its build, then restarts them.

The same invariants as the simulated phase are checked (dev/fault_run.py `check`), plus: every
build whose final callback was lost belongs to a task whose `deploying` step was completed by the
scheduled check (a "step attempt" line that succeeded: a worker's callback logs none).
"""

from __future__ import annotations

import collections
import pathlib
import shutil
import tempfile
import threading
import time
from typing import Any

import requests

from dev import fault_run
from dev.stack import LocalStack, free_port

LOST_SHARE = 0.4  # of the builds: their final callback never reaches Planter
CHECK_SECONDS = "2"  # GCP_BUILD_CHECK_SECONDS: a lost callback is found within seconds
DEPLOYING_WAIT_LIMIT = 120.0  # seconds to wait for a `deploying` step to wait before the kill


class LiveDriver(fault_run.Driver):
    """The simulated phase's driver, with pipelines that carry no `simulate` knobs."""

    def plan(self, index: int) -> tuple[dict[str, Any], str, dict[str, int]]:
        return {}, "completed", {}

    def inject_faults(self) -> None:
        # Kill while a build runs: the deploying step waits (no request open) for its callback.
        deadline = time.monotonic() + DEPLOYING_WAIT_LIMIT
        while time.monotonic() < deadline and not self.stop.is_set():
            if any(step == "deploying" for _, step in self.read(fault_run.WAITING_SQL)):
                break
            time.sleep(0.1)
        self.kill_functions()


def live_metering(step: str, result: dict[str, Any]) -> tuple[int, int, int]:
    """What the live providers meter for a succeeded step, from what its result records: the AI calls
    the customization took (a plan that fails its check is asked again), one call for the issue plan
    and the issues it opened (the Gemini stand-in's plan is accepted at once), one repository."""
    if step == "customizing_project":
        return int(result.get("ai_calls", 0)), 0, 0
    if step == "creating_issues":
        return 1, 0, len(result.get("issues", []))
    return 0, int(step == "forking_template"), 0


def lost_callback_tasks(stack: LocalStack) -> dict[str, str]:
    """Build id → task id of the builds whose final callback the stand-in lost."""
    from common.gcp.builds import task_tag

    state = stack.gcp.state
    with state.lock:
        builds = {b: dict(state.builds[b]) for b in state.lost_final_callbacks}
    found: dict[str, str] = {}
    for build_id, build in builds.items():
        tags = [t for t in build.get("tags", []) if t.startswith(task_tag(""))]
        found[build_id] = tags[0][len(task_tag("")) :] if tags else ""
    return found


def run(pipelines: int, seed: int, recovery_seconds: float, keep: bool) -> bool:
    """Run the live phase and print its report; True when every invariant holds."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="pl", dir="/tmp"))  # short: the unix socket path
    log_path = root / "functions.log"
    stack = LocalStack(
        data_dir=root / "pg",
        port=free_port(),
        tick_seconds=1,
        quiet=True,
        log_path=log_path,
        env_overrides={
            "JWT_SECRET": fault_run.JWT_SECRET,
            "STEP_SIGNING_SECRET": fault_run.STEP_SECRET,
            "STEP_PROVIDER": "live",
            "GCP_BUILD_CHECK_SECONDS": CHECK_SECONDS,
            "REDELIVERY_GRACE_SECONDS": "5",
        },
    )
    print(f"[fault-run live] starting a live local stack (stand-ins) in {root}", flush=True)
    ok = False
    try:
        stack.start()
        lost_wanted = max(1, round(pipelines * LOST_SHARE))
        requests.post(
            f"{stack.gcp.base_url}/_faults", json={"lose_final_callback": True, "times": lost_wanted}, timeout=10
        ).raise_for_status()
        began = time.monotonic()
        driver = LiveDriver(stack, pipelines, seed)
        workers = [
            threading.Thread(target=driver.create_all, name="create"),
            threading.Thread(target=driver.duplicate_forever, name="duplicates", daemon=True),
            threading.Thread(target=driver.inject_faults, name="faults"),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            if not worker.daemon:
                worker.join()
        faults_done = time.monotonic()
        deadline = faults_done + recovery_seconds
        while time.monotonic() < deadline and driver.active_count():
            time.sleep(0.5)
        driver.stop.set()
        time.sleep(0.5)
        result = fault_run.check(driver, log_path, live_metering, step_only_phases=True)
        lost = lost_callback_tasks(stack)
        ok = report(driver, result, lost, log_path, time.monotonic() - began)
        return ok
    finally:
        stack.stop()
        if ok and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"[fault-run live] files kept in {root} (functions log: {log_path})")


def ended_by_check(log_path: pathlib.Path) -> collections.Counter[str]:
    """Task id → how many times a scheduled check of its `deploying` step found the build succeeded."""
    found: collections.Counter[str] = collections.Counter()
    for entry in fault_run.read_log(log_path):
        if entry.get("message") == "step attempt" and entry.get("step") == "deploying" and entry.get("provider_ok"):
            found[entry.get("task_id", "")] += 1
    return found


def report(
    driver: LiveDriver, result: dict[str, Any], lost: dict[str, str], log_path: pathlib.Path, duration: float
) -> bool:
    invariants = fault_run.invariants_of(result)
    by_check = ended_by_check(log_path)
    rows = driver.read(
        "SELECT task_id::text, status, coalesce(result->>'build_id', handoff->'state'->>'build_id')"
        " FROM task_steps WHERE name = 'deploying'"
    )
    statuses = {r[0]: r[1] for r in rows}
    waited_on = {r[0]: r[2] for r in rows}  # the build the step ended with (or waits for)
    # A build whose attempt the kill cut short before its hand-off was recorded is adopted by the
    # next attempt (common/gcp/builds.py), so its step ends with it too; one the step did not end
    # with (expected: none) is counted as abandoned.
    abandoned = [b for b, t in lost.items() if waited_on.get(t) != b]
    relied_on = {b: t for b, t in lost.items() if waited_on.get(t) == b}
    not_by_check = [t for t in relied_on.values() if not (statuses.get(t) == "succeeded" and by_check[t] >= 1)]
    invariants["lost-callback builds not completed by the scheduled check"] = len(not_by_check)
    invariants["no step waited on a build that lost its callback (run again)"] = int(not relied_on)
    invariants["no deploying step waited at the kill"] = int(
        not any(step == "deploying" for _, step in driver.waiting_at_kill)
    )
    lost_faults = {"builds whose final outcome callback was lost": len(lost)}
    fault_run.print_head("fault run, live phase (providers against the stand-ins)", driver, result, lost_faults)
    fault_run.print_invariants(result, invariants)
    print(
        f"waiting at the kill, not ended:    {len(result['waiting_at_kill_unended'])}"
        f"  (of {len(driver.waiting_at_kill)}: {sorted(s for _, s in driver.waiting_at_kill)})"
    )
    print(
        f"lost callbacks not ended by check: {len(not_by_check)}"
        f"  (of {len(relied_on)} waited on, {len(abandoned)} abandoned with their cut-short attempt;"
        f" deploying steps ended by a check: {len(by_check)}, by the build's callback:"
        f" {sum(1 for s in statuses.values() if s == 'succeeded') - len(by_check)})"
    )
    print(f"duration:                          {duration:.1f} s")
    fault_run.print_examples(result)
    failed = {k: v for k, v in invariants.items() if v}
    print("RESULT (live phase):", "all invariants hold" if not failed else f"FAILED {failed}")
    return not failed
