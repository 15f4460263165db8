"""`make fault-run`, shortened so that every `make test` proves it again: dozens of pipelines
through their own local stack, with duplicate deliveries, step failures, cancellations, a SIGKILL
of the functions while steps run and wait, two PostgreSQL restarts and an emulator restart
(dev/fault_run.py's machinery, unchanged), then a small live phase against the stand-ins (lost
build callbacks, a kill while a deploying step waits). The full run stays in `make fault-run`."""

from __future__ import annotations

import ast
import re

import pytest

from dev import fault_run

pytestmark = pytest.mark.e2e

SHORT_RUN = ["--pipelines", "40", "--seed", "20261122", "--recovery-seconds", "120", "--live-pipelines", "6"]
LIVE_HEADER = "=== fault run, live phase"
# The report's lines that must read 0, as dev/fault_run.py prints them.
MUST_BE_ZERO = (
    "tasks lost",
    "steps run more than once",
    "tasks not terminal after recovery",
    "attempts cut short outside faults",
    "attempts missing from the log",
    "requests answered 500",
)

TOLERATED_IN_THE_SHORT_RUN = {
    "the kill interrupted no running step (run again)",
    "no step was waiting at the kill (run again)",
    f"p99 creation to first step >= {fault_run.FIRST_STEP_P99_LIMIT:g} s",
}


def figure(report: str, label: str) -> int:
    found = re.search(rf"^ *{re.escape(label)}:? +(\d+)", report, re.MULTILINE)
    assert found, f"no {label!r} line in the report:\n{report}"
    return int(found.group(1))


@pytest.mark.timeout(600)
def test_a_short_fault_run_loses_nothing_runs_nothing_twice_and_answers_no_500(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = fault_run.main(SHORT_RUN)
    report = capsys.readouterr().out
    summary = report[report.find("=== fault run ===") : report.find(LIVE_HEADER)]
    live = report[report.find(LIVE_HEADER) :]
    with capsys.disabled():
        print("\n" + summary + live)
    assert figure(report, "pipelines started") == 40
    # The faults really struck: a kill of the functions and PostgreSQL restarts under running pipelines.
    assert figure(report, "functions process killed (SIGKILL) and restarted") == 1
    assert figure(report, "PostgreSQL restarts") == 2
    assert figure(report, "Cloud Tasks emulator restarts (queue lost)") == 1
    assert figure(summary, "steps waiting at the kill") >= 1
    for label in MUST_BE_ZERO:
        assert figure(summary, label) == 0, summary
    # The live phase: its providers against the stand-ins, some builds' outcome callbacks lost,
    # the functions killed while a deploying step waits; each lost one ended by the scheduled check.
    assert LIVE_HEADER in report, report[-3000:]
    assert figure(live, "pipelines started") == 6
    assert figure(live, "builds whose final outcome callback was lost") >= 1
    assert figure(live, "steps waiting at the kill") >= 1, live
    for label in (*MUST_BE_ZERO, "waiting at the kill, not ended", "lost callbacks not ended by check"):
        assert figure(live, label) == 0, live
    assert "RESULT (live phase): all invariants hold" in live, live
    # Besides the invariants above, the run fails itself when the kill happened to cut no step
    # short (it then proved less, not something wrong), or when its p99 from creation to first step
    # crossed the full run's limit: with 40 pipelines that p99 is the slowest task's wait, a timing
    # on a shared machine that `make fault-run` judges on 200 — printed here, never asserted.
    if status != 0:
        failed = re.search(r"RESULT: FAILED (\{.*\})", summary)
        assert failed, summary
        keys = set(ast.literal_eval(failed.group(1)))
        assert keys <= TOLERATED_IN_THE_SHORT_RUN, summary
