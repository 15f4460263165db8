"""`make fault-run`: drive hundreds of pipelines through the local stack while breaking things.

Starts its own LocalStack (PostgreSQL, the Cloud Tasks emulator, the functions, a 1 s scheduler
tick) in a fresh directory, starts PIPELINES create-project pipelines from many users, and while
they run injects:

- duplicate deliveries: signed copies of a task's current step, several at once, and late
  copies of steps that already finished, posted straight to /internal/steps;
- duplicate storms: 4 senders posting copies of one task's current step every 50 ms for a while;
- long steps: some pipelines' steps take seconds (handed off: they wait, checked later by a
  scheduled delivery, holding no dispatch slot);
- step failures: the simulated provider fails a step a few times (retried), or more times than
  the step has attempts (the task must fail cleanly);
- cancellations of running tasks;
- a SIGKILL of the functions process while steps are running, then a restart;
- a PostgreSQL restart (fast shutdown: every open connection is cut);
- a Cloud Tasks emulator restart (every queued delivery is lost: only the reaper can recover).

Then it waits for a recovery window and checks, from the database and the functions' log:

- tasks lost: accepted (202) but missing from the database, without progress history, or ended
  in a state their faults do not explain (e.g. failed without an exhausting failure) — must be 0;
- steps run more than once: (task, step) pairs whose provider completed successfully more than
  once (from the "step attempt" log lines), whose phase has more than one progress row, or that
  logged more failed attempts than were injected — must be 0; usage counters that differ from
  what the succeeded steps metered (3 + 1 AI operations, 1 project, 5 issues per pipeline) are
  counted too, one per user whose figures are off;
- attempts interrupted outside a fault (claimed, never finished, not near a kill or restart) — 0;
- tasks not terminal after the recovery window — must be 0;
- the p99 time from a task's creation to its first step starting — must stay under 10 s.

Exit status 1 when an invariant fails; the stack's files are then kept for inspection.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import pathlib
import random
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
import sqlalchemy as sa

from common import pipeline
from common.auth import SIGNATURE_HEADER, sign_body
from common.queue import step_body
from dev.stack import LocalStack, free_port

JWT_SECRET = "fault-run-jwt-secret-0123456789-0123456789"
STEP_SECRET = "fault-run-step-secret-0123456789-0123456789"
TERMINAL = ("completed", "failed", "cancelled")
STEPS = pipeline.STEP_NAMES
USERS = 40  # 5 pipelines each by default: 20 AI operations, well under the free tier's 100
STEP_SECONDS = 0.02
ACTIVE_LIMIT = 25  # pipelines in flight: the emulator dispatches one request at a time
INTERRUPTION_MARGIN = 8.0  # seconds around a fault within which an attempt may be cut short
LONG_STEP_SECONDS = (3.0, 6.0)  # a long pipeline's steps: above the simulated provider's inline bound
LONG_SHARE = 0.1  # of the pipelines
# Some pipelines' steps run inline for a second: an engine step takes a few milliseconds, so only a step
# that works this long is reliably still running when the kill strikes (kill_functions).
MEDIUM_STEP_SECONDS = 1.0
MEDIUM_SHARE = 0.1
STORMS = 4  # duplicate storms over the run
STORM_SENDERS, STORM_INTERVAL, STORM_SECONDS = 4, 0.05, 8.0
FIRST_STEP_P99_LIMIT = 10.0  # seconds from a task's creation to its first step starting
FIRST_STEP_WINDOW = 15.0  # seconds of creation time per window of the "throughout" figure
WAITING_SQL = "SELECT task_id::text, name FROM task_steps WHERE status = 'waiting'"


@dataclass
class Pipeline:
    task_id: str
    email: str
    simulate: dict[str, Any]
    expected: str  # the terminal status its faults lead to
    injected_failures: dict[str, int] = field(default_factory=dict)  # failing attempts per step


@dataclass
class Counters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    fault_windows: list[tuple[str, float, float]] = field(default_factory=list)  # (kind, start, end) epoch

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.faults[kind] += n

    def answered(self, status: int) -> None:
        with self.lock:
            self.answers[str(status)] += 1


def user_token(email: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"email": email, "sub": f"fault|{email}", "iat": now, "exp": now + 6 * 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class Driver:
    def __init__(self, stack: LocalStack, pipelines: int, seed: int) -> None:
        self.stack = stack
        self.wanted = pipelines
        self.plan_random = random.Random(seed)  # the workload: the same for the same seed
        self.random = random.Random(seed + 1)  # when and where the faults strike
        self.counters = Counters()
        self.pipelines: list[Pipeline] = []
        self.tokens = {f"fault-{i:02d}@planter.test": user_token(f"fault-{i:02d}@planter.test") for i in range(USERS)}
        self.engine = sa.create_engine(stack.database_url, poolclass=sa.NullPool)
        self.stop = threading.Event()
        self.running_at_kill: set[tuple[str, str, int]] = set()
        self.waiting_at_kill: set[tuple[str, str]] = set()  # (task, step) waiting when the functions died
        self.session = requests.Session()

    # --- the workload ---------------------------------------------------------------------
    def plan(self, index: int) -> tuple[dict[str, Any], str, dict[str, int]]:
        """The simulation knobs of pipeline ``index``, what it should end as, and its injected failures."""
        roll = self.plan_random.random()
        simulate: dict[str, Any] = {"step_seconds": STEP_SECONDS}
        # Pipeline 3 is always long: the kill (at a quarter of the run) then finds a waiting step.
        if self.plan_random.random() < LONG_SHARE or index == 3:
            simulate["step_seconds"] = round(self.plan_random.uniform(*LONG_STEP_SECONDS), 2)
        elif self.plan_random.random() < MEDIUM_SHARE:
            simulate["step_seconds"] = MEDIUM_STEP_SECONDS
        if roll < 0.06:  # more failures than the step has attempts: the task must fail
            step = self.plan_random.choice(STEPS)
            simulate.update(fail_step=step, failures=50)
            return simulate, "failed", {step: pipeline.BY_NAME[step].max_attempts}
        if roll < 0.30:  # transient: fails, then succeeds (room left for an interruption or two)
            step = self.plan_random.choice([s.name for s in pipeline.STEPS if s.max_attempts >= 4])
            failures = 1 if pipeline.BY_NAME[step].max_attempts == 4 else self.plan_random.choice((1, 2))
            simulate.update(fail_step=step, failures=failures)
            return simulate, "completed", {step: failures}
        return simulate, "completed", {}

    def read(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a query, waiting out a PostgreSQL restart."""
        while True:
            try:
                with self.engine.connect() as conn:
                    return list(conn.execute(sa.text(sql), params).all())
            except (sa.exc.DBAPIError, OSError):
                time.sleep(0.2)

    def active(self) -> list[Pipeline]:
        if not self.pipelines:
            return []
        rows = self.read("SELECT id::text FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled')")
        live = {r[0] for r in rows}
        return [p for p in self.pipelines if p.task_id in live]

    def create_all(self) -> None:
        emails = list(self.tokens)
        index = 0
        while index < self.wanted and not self.stop.is_set():
            in_flight = len(self.active())
            while in_flight < ACTIVE_LIMIT and index < self.wanted:
                email = emails[index % len(emails)]
                simulate, expected, failures = self.plan(index)
                body: dict[str, Any] = {"project_name": f"Fault run {index}", "project_description": "fault run"}
                if simulate:  # none: the live providers, against the stand-ins (dev/fault_run_live.py)
                    body["simulate"] = simulate
                try:
                    response = self.session.post(
                        f"{self.stack.base_url}/api/v1/projects",
                        json=body,
                        headers={"Authorization": f"Bearer {self.tokens[email]}"},
                        timeout=30,
                    )
                except requests.RequestException:
                    time.sleep(0.5)  # the functions are being restarted: try this one again
                    continue
                if response.status_code != 202:
                    time.sleep(0.5)  # 503 while PostgreSQL restarts: try this one again
                    continue
                task_id = response.json()["task_id"]
                self.pipelines.append(Pipeline(task_id, email, simulate, expected, failures))
                if simulate.get("step_seconds", STEP_SECONDS) > STEP_SECONDS:
                    self.counters.count("long steps: pipelines whose steps are handed off and wait")
                if failures:
                    kind = "step failures (exhausting)" if expected == "failed" else "step failures (transient)"
                    self.count_failures(kind, failures)
                index += 1
                in_flight += 1
            time.sleep(0.2)

    def count_failures(self, kind: str, failures: dict[str, int]) -> None:
        self.counters.count(kind + ": pipelines")
        self.counters.count(kind + ": failing attempts", sum(failures.values()))

    # --- duplicate deliveries --------------------------------------------------------------
    def deliver(self, task_id: str, step: str, generation: int) -> None:
        body = step_body(task_id, step, generation)
        try:
            response = requests.post(
                f"{self.stack.base_url}/internal/steps",
                data=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, STEP_SECRET)},
                timeout=30,
            )
            self.counters.answered(response.status_code)
        except requests.RequestException:
            self.counters.answered(0)

    def current_step(self, task_id: str) -> tuple[str, int] | None:
        """The task's current step and its generation: what a copy of its delivery carries."""
        rows = self.read(
            "SELECT t.current_step, s.generation FROM tasks t"
            " JOIN task_steps s ON s.task_id = t.id AND s.name = t.current_step WHERE t.id = :t",
            t=task_id,
        )
        if not rows or rows[0][0] is None:
            return None
        return str(rows[0][0]), int(rows[0][1])

    def duplicate_forever(self) -> None:
        while not self.stop.wait(0.15):
            self.duplicate_once()

    def duplicate_once(self) -> None:
        candidates = self.active()
        if not candidates:
            return
        target = self.random.choice(candidates)
        current = self.current_step(target.task_id)
        if current is None:
            return
        step, generation = current
        copies = self.random.randint(2, 4)
        threads = [
            threading.Thread(target=self.deliver, args=(target.task_id, step, generation)) for _ in range(copies)
        ]
        position = STEPS.index(step)
        if position > 0:  # and a late copy of a step that already finished
            late = STEPS[self.random.randrange(position)]
            threads.append(threading.Thread(target=self.deliver, args=(target.task_id, late, 0)))
            self.counters.count("duplicate deliveries (late, of a finished step)")
        self.counters.count("duplicate deliveries (concurrent copies of the current step)", copies)
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def storm_some(self, count: int) -> None:
        """Duplicate storms: copies of one task's current step from 4 senders every 50 ms."""
        for _ in range(count):
            if self.stop.wait(self.random.uniform(5, 15)):
                return
            candidates = self.active()
            if not candidates:
                continue
            long_ones = [p for p in candidates if p.simulate.get("step_seconds", STEP_SECONDS) > STEP_SECONDS]
            target = self.random.choice(long_ones or candidates)
            current = self.current_step(target.task_id)
            if current is None:
                continue
            step, generation = current
            sent = self.storm(target.task_id, step, generation)
            self.counters.count("duplicate storms (4 senders every 50 ms)")
            self.counters.count("duplicate storms: copies sent", sent)

    def storm(self, task_id: str, step: str, generation: int) -> int:
        """STORM_SENDERS threads each posting a copy every STORM_INTERVAL for STORM_SECONDS; copies sent."""
        until = time.monotonic() + STORM_SECONDS
        sent = [0] * STORM_SENDERS

        def sender(index: int) -> None:
            while time.monotonic() < until and not self.stop.is_set():
                self.deliver(task_id, step, generation)
                sent[index] += 1
                time.sleep(STORM_INTERVAL)

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(STORM_SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(sent)

    def cancel_some(self, count: int) -> None:
        done = 0
        while done < count and not self.stop.is_set():
            time.sleep(self.random.uniform(0.5, 2.0))
            candidates = [p for p in self.active() if p.expected == "completed" and not p.injected_failures]
            if not candidates:
                continue
            target = self.random.choice(candidates)
            try:
                response = self.session.post(
                    f"{self.stack.base_url}/api/v1/tasks/{target.task_id}/cancel",
                    headers={"Authorization": f"Bearer {self.tokens[target.email]}"},
                    timeout=30,
                )
            except requests.RequestException:
                continue
            if response.status_code == 200:
                target.expected = "cancelled"
                self.counters.count("cancellations")
                done += 1

    # --- process faults --------------------------------------------------------------------
    def running_steps(self) -> int:
        count: int = self.read("SELECT count(*) FROM task_steps WHERE status = 'running'")[0][0]
        return count

    def active_count(self) -> int:
        return len(self.active())

    def wait_for_progress(self, fraction: float) -> None:
        while len(self.pipelines) < self.wanted * fraction and not self.stop.is_set():
            time.sleep(0.2)

    def kill_functions(self) -> None:
        # Strike while a step is running, so that the kill interrupts work, not an idle process,
        # and (for up to 30 s) while another waits for an outside worker or its scheduled check.
        running: list[Any] = []
        waiting: list[Any] = []
        deadline = time.monotonic() + 30
        # A step that will still be running when the signal lands: one of a second, claimed just now.
        medium = [p.task_id for p in self.pipelines if p.simulate.get("step_seconds") == MEDIUM_STEP_SECONDS]
        about_to_be_cut = sa.text(
            "SELECT 1 FROM task_steps WHERE status = 'running' AND task_id = ANY(CAST(:ids AS uuid[]))"
            " AND heartbeat_at > now() - interval '0.4 seconds' LIMIT 1"
        )
        query = sa.text("SELECT task_id::text, name, attempts FROM task_steps WHERE status = 'running'")
        with self.engine.connect() as conn:

            def look() -> tuple[list[Any], list[Any]]:
                # (The live phase plans no such pipeline: there, any running step will do.)
                cut = not medium or conn.execute(about_to_be_cut, {"ids": medium}).first() is not None
                return (list(conn.execute(query).all()) if cut else []), list(conn.execute(sa.text(WAITING_SQL)).all())

            while not (running and waiting) and time.monotonic() < deadline:
                running, waiting = look()
            deadline = time.monotonic() + 30
            while not running and time.monotonic() < deadline:  # none together: strike while one runs
                running, waiting = look()
            start = time.time()
            self.stack.kill_functions()
        # The kill may land between a claim's commit and its "step claimed" log line: these
        # attempts are known to have been cut short even if the log never names them.
        self.running_at_kill.update((r[0], r[1], r[2]) for r in running)
        time.sleep(1.0)
        self.stack.start_functions()
        self.counters.fault_windows.append(("kill", start, time.time()))
        self.counters.count("functions process killed (SIGKILL) and restarted")
        self.counters.count("steps running at the kill", len(running))
        self.counters.count("steps waiting at the kill", len(waiting))
        self.waiting_at_kill.update((r[0], r[1]) for r in waiting)

    def restart_postgres(self) -> None:
        start = time.time()
        self.stack.restart_postgres()
        self.counters.fault_windows.append(("postgres", start, time.time()))
        self.counters.count("PostgreSQL restarts")

    def restart_emulator(self) -> None:
        start = time.time()
        self.stack.restart_emulator()
        self.counters.fault_windows.append(("emulator", start, time.time()))
        self.counters.count("Cloud Tasks emulator restarts (queue lost)")

    def inject_faults(self) -> None:
        self.wait_for_progress(0.25)
        self.kill_functions()
        self.wait_for_progress(0.5)
        self.restart_postgres()
        self.wait_for_progress(0.7)
        self.restart_emulator()
        self.wait_for_progress(0.85)
        self.restart_postgres()


# --- checking ---------------------------------------------------------------------------------
def read_log(path: pathlib.Path) -> list[dict[str, Any]]:
    entries = []
    with path.open("rb") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # gunicorn's own lines, or one cut short by the SIGKILL
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (0 when there are none)."""
    if not values:
        return 0.0
    rank = max(1, -(-len(values) * pct // 100))
    return values[int(rank) - 1]


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def simulated_metering(step: str, result: dict[str, Any]) -> tuple[int, int, int]:
    """What the simulated provider meters for a succeeded step: (AI operations, projects, issues)."""
    ai = pipeline.BY_NAME[step].ai_operations if step in ("customizing_project", "creating_issues") else 0
    return ai, int(step == "forking_template"), 5 if step == "creating_issues" else 0


def check(
    driver: Driver,
    log_path: pathlib.Path,
    metered: Callable[[str, dict[str, Any]], tuple[int, int, int]] = simulated_metering,
    step_only_phases: bool = False,
) -> dict[str, Any]:
    """Compare what happened (database, log) with what the workload and its faults allow.

    ``metered``: what a succeeded step adds to its user's usage. ``step_only_phases``: count only the
    progress rows the steps themselves record (an outside worker posts several of its own per phase)."""
    expected = {p.task_id: p for p in driver.pipelines}
    with driver.engine.connect() as conn:
        tasks = {
            str(r["id"]): dict(r) for r in conn.execute(sa.text("SELECT id, status, user_email FROM tasks")).mappings()
        }
        steps = [
            dict(r)
            for r in conn.execute(sa.text("SELECT task_id, name, status, attempts, result FROM task_steps")).mappings()
        ]
        # From a task's creation to its first step starting (tasks whose first step started).
        first_step_rows = [
            (float(r[0]), float(r[1]))
            for r in conn.execute(
                sa.text(
                    "SELECT extract(epoch FROM t.created_at), extract(epoch FROM s.started_at - t.created_at)"
                    " FROM tasks t JOIN task_steps s ON s.task_id = t.id AND s.name = :first"
                    " WHERE s.started_at IS NOT NULL"
                ),
                {"first": STEPS[0]},
            )
        ]
        phase_rows = (
            conn.execute(
                sa.text(
                    "SELECT task_id, status, count(*) AS n,"
                    " count(*) FILTER (WHERE update_id LIKE 'step:%') AS n_step"
                    " FROM task_progress GROUP BY task_id, status"
                )
            )
            .mappings()
            .all()
        )
        usage = {
            r["email"]: (r["ai_operations_count"], r["projects_created"], r["issues_generated"])
            for r in conn.execute(
                sa.text(
                    "SELECT u.email, g.ai_operations_count, g.projects_created, g.issues_generated"
                    " FROM usage g JOIN users u ON u.id = g.user_id"
                )
            ).mappings()
        }
    first_step = [wait for _, wait in first_step_rows]
    # The same figure per window of creation time: "throughout" the run, not only on average.
    windows: dict[int, list[float]] = collections.defaultdict(list)
    for created, wait in first_step_rows:
        windows[int(created // FIRST_STEP_WINDOW)].append(wait)
    window_p99 = [percentile(sorted(w), 99) for _, w in sorted(windows.items())]
    log = read_log(log_path)
    claims: collections.Counter[tuple[str, str]] = collections.Counter()
    claim_times: dict[tuple[str, str, int], float] = {}
    ended: set[tuple[str, str, int]] = set()
    provider_successes: collections.Counter[tuple[str, str]] = collections.Counter()
    failed_attempts: collections.Counter[tuple[str, str]] = collections.Counter()
    for entry in log:
        key = (entry.get("task_id", ""), entry.get("step", ""))
        if entry.get("message") == "step claimed":
            claims[key] += 1
            claim_times[(*key, entry["attempt"])] = epoch(entry["claimed_at"])
        elif entry.get("message") == "step attempt":
            ended.add((*key, entry["attempt"]))
            if entry["provider_ok"]:
                provider_successes[key] += 1
            elif entry["provider_ok"] is False:  # None: handed off, settled by a later line
                failed_attempts[key] += 1
    unexpected_errors = [e for e in log if e.get("message") in ("unhandled error", "unexpected database error")]

    missing = [t for t in expected if t not in tasks]
    without_history = [t for t in expected if t in tasks and not any(str(r["task_id"]) == t for r in phase_rows)]
    not_terminal = [t for t in expected if t in tasks and tasks[t]["status"] not in TERMINAL]
    wrong_outcome = [
        t
        for t, p in expected.items()
        if t in tasks and tasks[t]["status"] in TERMINAL and tasks[t]["status"] != p.expected
    ]

    run_twice: set[tuple[str, str]] = set()
    reasons: collections.Counter[str] = collections.Counter()
    for key, n in provider_successes.items():
        if n > 1:
            run_twice.add(key)
            reasons["provider succeeded more than once"] += 1
    for row in phase_rows:
        if row["status"] in STEPS and row["n_step" if step_only_phases else "n"] > 1:
            run_twice.add((str(row["task_id"]), row["status"]))
            reasons["phase recorded more than once"] += 1
    for key, n in failed_attempts.items():
        if key[0] in expected and n > expected[key[0]].injected_failures.get(key[1], 0):
            run_twice.add(key)
            reasons["more failed attempts than injected"] += 1

    # Attempts accounting: every attempt the database counts was logged as claimed; an attempt
    # claimed and never finished was cut short, which only a fault may do.
    attempts_unlogged = 0
    interrupted = 0
    interrupted_by: collections.Counter[str] = collections.Counter()
    unexplained: list[tuple[str, str, int]] = []
    for step_row in steps:
        key = (str(step_row["task_id"]), step_row["name"])
        for attempt in range(1, step_row["attempts"] + 1):
            if (*key, attempt) in ended:
                continue
            interrupted += 1
            if (*key, attempt) in driver.running_at_kill:
                interrupted_by["kill"] += 1
                continue
            if (*key, attempt) not in claim_times:
                attempts_unlogged += 1
            at = claim_times.get((*key, attempt))
            near = sorted(
                (max(start - at, at - end, 0.0), kind)
                for kind, start, end in driver.counters.fault_windows
                if at is not None and start - INTERRUPTION_MARGIN <= at <= end + INTERRUPTION_MARGIN
            )
            if near:
                interrupted_by[near[0][1]] += 1  # the nearest fault
            else:
                unexplained.append((*key, attempt))

    # Metering: what each user's succeeded steps should have added up to.
    wanted: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for task in tasks.values():
        wanted[task["user_email"]]  # a user whose steps metered nothing is still compared
    for r in steps:
        if r["status"] == "succeeded" and str(r["task_id"]) in tasks:
            figures = wanted[tasks[str(r["task_id"])]["user_email"]]
            for i, n in enumerate(metered(r["name"], r["result"] or {})):
                figures[i] += n
    metering_off = [e for e, f in wanted.items() if tuple(f) != usage.get(e, (0, 0, 0))]
    metering_off += [e for e in usage if e not in wanted]

    # The steps that were waiting when the functions died: each must have ended (its task too, as expected).
    step_status = {(str(r["task_id"]), r["name"]): r["status"] for r in steps}
    waiting_unended = [
        key
        for key in sorted(driver.waiting_at_kill)
        if step_status.get(key) in ("waiting", "running", "pending") or key[0] in not_terminal + wrong_outcome
    ]

    statuses = collections.Counter(tasks[t]["status"] for t in expected if t in tasks)
    return {
        "missing": missing,
        "without_history": without_history,
        "wrong_outcome": wrong_outcome,
        "not_terminal": not_terminal,
        "run_twice": sorted(run_twice),
        "run_twice_reasons": dict(reasons),
        "metering_off": metering_off,
        "interrupted": interrupted,
        "interrupted_by": dict(interrupted_by),
        "unexplained_interruptions": unexplained,
        "attempts_unlogged": attempts_unlogged,
        "unexpected_errors": len(unexpected_errors),
        "statuses": dict(statuses),
        "waiting_at_kill_ended": collections.Counter(step_status.get(k, "?") for k in driver.waiting_at_kill),
        "waiting_at_kill_unended": waiting_unended,
        "first_step_seconds": sorted(first_step),
        "first_step_window_p99": window_p99,
        "attempts_total": sum(r["attempts"] for r in steps),
        "claims_logged": sum(claims.values()),
    }


def invariants_of(result: dict[str, Any]) -> dict[str, int]:
    """The figures of ``check``'s result that must all be 0."""
    return {
        "tasks lost": len(result["missing"]) + len(result["without_history"]) + len(result["wrong_outcome"]),
        "steps run more than once": len(result["run_twice"]) + len(result["metering_off"]),
        "tasks not terminal after the recovery window": len(result["not_terminal"]),
        "attempts cut short outside a fault": len(result["unexplained_interruptions"]),
        "attempts not accounted for in the log": result["attempts_unlogged"],
        "requests answered 500": result["unexpected_errors"],
        "steps waiting at the kill that did not end": len(result["waiting_at_kill_unended"]),
        f"p99 creation to first step >= {FIRST_STEP_P99_LIMIT:g} s": int(
            percentile(result["first_step_seconds"], 99) >= FIRST_STEP_P99_LIMIT
        ),
    }


# --- reporting (both phases: dev/fault_run_live.py prints its report with these too) ----------
def print_head(title: str, driver: Driver, result: dict[str, Any], more_faults: dict[str, int] | None = None) -> None:
    """What was started, how it ended, what was injected (``more_faults``: the phase's own kinds)."""
    print()
    print(f"=== {title} ===")
    print(f"pipelines started:                 {len(driver.pipelines)}")
    print(f"outcomes:                          {result['statuses']}")
    print("faults injected:")
    for kind, n in [*sorted(driver.counters.faults.items()), *(more_faults or {}).items()]:
        print(f"  {kind:<62} {n}")
    print(f"duplicate deliveries answered:     {dict(sorted(driver.counters.answers.items()))}")


def print_invariants(result: dict[str, Any], invariants: dict[str, int]) -> None:
    """The figures of the invariants every phase checks (``invariants_of``), with their breakdowns."""
    print(f"attempts cut short by the faults:  {result['interrupted']} {result['interrupted_by']}")
    print(
        f"tasks lost:                        {invariants['tasks lost']}"
        f"  (missing {len(result['missing'])}, without history {len(result['without_history'])},"
        f" unexplained outcome {len(result['wrong_outcome'])})"
    )
    print(
        f"steps run more than once:          {invariants['steps run more than once']}"
        f"  ({result['run_twice_reasons'] or 'none'}; users with usage off: {len(result['metering_off'])})"
    )
    print(f"tasks not terminal after recovery: {invariants['tasks not terminal after the recovery window']}")
    print(f"attempts cut short outside faults: {invariants['attempts cut short outside a fault']}")
    print(f"attempts missing from the log:     {invariants['attempts not accounted for in the log']}")
    print(f"requests answered 500:             {invariants['requests answered 500']}")


def print_examples(result: dict[str, Any]) -> None:
    """The first few tasks, steps and attempts behind each failed figure, to start looking from."""
    for name in ("missing", "without_history", "wrong_outcome", "not_terminal", "run_twice", "metering_off"):
        if result[name]:
            print(f"  {name}: {result[name][:10]}")
    if result["unexplained_interruptions"]:
        print(f"  unexplained interruptions: {result['unexplained_interruptions'][:10]}")


def main(argv: list[str] | None = None) -> int:
    """The run as `make fault-run` makes it; ``argv`` lets a test ask for a shorter one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--recovery-seconds", type=float, default=180, help="how long to wait for the tail")
    parser.add_argument("--keep", action="store_true", help="keep the stack's files even when all is well")
    parser.add_argument(
        "--live-pipelines", type=int, default=15, help="then a phase through the live providers (0: none)"
    )
    args = parser.parse_args(argv)
    for noisy in ("pgserver", "alembic", "httpx"):  # httpx: the in-process stand-ins
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    status = run_simulated(args)
    if args.live_pipelines > 0:
        from dev import fault_run_live

        live_ok = fault_run_live.run(args.live_pipelines, args.seed, args.recovery_seconds, args.keep)
        status = status or (0 if live_ok else 1)
    return status


def run_simulated(args: argparse.Namespace) -> int:
    """The first phase: ``args.pipelines`` pipelines through the simulated provider."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))  # short: the unix socket path
    log_path = root / "functions.log"
    stack = LocalStack(
        data_dir=root / "pg",
        port=free_port(),
        tick_seconds=1,
        quiet=True,
        log_path=log_path,
        env_overrides={
            "JWT_SECRET": JWT_SECRET,
            "STEP_SIGNING_SECRET": STEP_SECRET,
            "STEP_PROVIDER": "simulated",
            "STEP_TIMEOUT_SECONDS": "3",
            # Longer than a delivery usually waits in the emulator's one-at-a-time queue with
            # ACTIVE_LIMIT pipelines in flight (p50 ~1 s, p99 ~4 s outside faults), and short enough
            # that a first step lost with the queue starts within the 10 s the creation-to-first-step
            # p99 allows. A copy sent for a step that was only slow is harmless (the task lock), and
            # the reaper doubles the wait before each further copy.
            "REDELIVERY_GRACE_SECONDS": "5",
        },
    )
    print(f"[fault-run] starting the local stack in {root}", flush=True)
    ok = False
    try:
        stack.start()
        began = time.monotonic()
        driver = Driver(stack, args.pipelines, args.seed)
        workers = [
            threading.Thread(target=driver.create_all, name="create"),
            threading.Thread(target=driver.duplicate_forever, name="duplicates", daemon=True),
            threading.Thread(
                target=driver.cancel_some, args=(max(1, args.pipelines // 20),), name="cancel", daemon=True
            ),
            threading.Thread(target=driver.inject_faults, name="faults"),
            threading.Thread(target=driver.storm_some, args=(STORMS,), name="storms", daemon=True),
        ]
        for worker in workers:
            worker.start()
        last_report = 0.0
        while any(w.is_alive() for w in workers if not w.daemon):
            time.sleep(1)
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                print(
                    f"[fault-run] {time.monotonic() - began:5.0f} s: {len(driver.pipelines)} started,"
                    f" {driver.active_count()} active",
                    flush=True,
                )
        faults_done = time.monotonic()
        print(f"[fault-run] all pipelines started and faults injected after {faults_done - began:.0f} s", flush=True)
        deadline = faults_done + args.recovery_seconds
        while time.monotonic() < deadline:
            active = driver.active_count()
            if active == 0:
                break
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                print(f"[fault-run] {time.monotonic() - began:5.0f} s: {active} still active", flush=True)
            time.sleep(0.5)
        driver.stop.set()
        time.sleep(0.5)  # let the last duplicate deliveries be answered before reading the log
        recovered = time.monotonic()
        result = check(driver, log_path)
        duration = time.monotonic() - began

        invariants = invariants_of(result)
        print_head("fault run", driver, result)
        print(f"step attempts (database / logged): {result['attempts_total']} / {result['claims_logged']}")
        print_invariants(result, invariants)
        print(
            f"waiting at the kill, not ended:    {len(result['waiting_at_kill_unended'])}"
            f"  (of {len(driver.waiting_at_kill)}; they ended {dict(result['waiting_at_kill_ended'])})"
        )
        waits = result["first_step_seconds"]
        print(
            f"creation to first step start:      p50 {percentile(waits, 50):.2f} s, p99 {percentile(waits, 99):.2f} s,"
            f" max {max(waits, default=0):.2f} s (limit for p99: {FIRST_STEP_P99_LIMIT:g} s; {len(waits)} tasks)"
        )
        windowed = result["first_step_window_p99"]
        print(
            f"  p99 per {FIRST_STEP_WINDOW:g} s of creation time: worst {max(windowed, default=0):.2f} s,"
            f" {sum(1 for w in windowed if w >= FIRST_STEP_P99_LIMIT)} of {len(windowed)} windows at or over the limit"
            f" ({' '.join(f'{w:.1f}' for w in windowed)})"
        )
        print(f"recovery after the last fault:     {recovered - faults_done:.1f} s")
        print(f"duration:                          {duration:.1f} s")
        failed = {k: v for k, v in invariants.items() if v}
        if not result["interrupted_by"].get("kill"):
            # Not an invariant of Planter but of this run: a kill that cut nothing short proved nothing.
            failed["the kill interrupted no running step (run again)"] = 1
        if not driver.waiting_at_kill:  # likewise: the kill must also strike while a step waits
            failed["no step was waiting at the kill (run again)"] = 1
        print_examples(result)
        ok = not failed
        print("RESULT:", "all invariants hold" if ok else f"FAILED {failed}")
        return 0 if ok else 1
    finally:
        stack.stop()
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"[fault-run] files kept in {root} (functions log: {log_path})")


if __name__ == "__main__":
    sys.exit(main())
