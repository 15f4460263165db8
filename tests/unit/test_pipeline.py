from __future__ import annotations

from common import pipeline, tables


def test_task_statuses_are_the_pipeline_phases_plus_terminal_states() -> None:
    assert ("initializing", *pipeline.ALL_STEP_NAMES, *tables.TERMINAL_STATUSES) == tables.TASK_STATUSES


def test_progress_rises_through_the_documented_phases() -> None:
    assert [(s.name, s.progress_percent) for s in pipeline.STEPS] == [
        ("creating_org", 10),
        ("forking_template", 25),
        ("customizing_project", 40),
        ("creating_gcp_project", 60),
        ("deploying", 75),
        ("creating_issues", 90),
    ]


def test_backoff_doubles_up_to_its_cap() -> None:
    step = pipeline.BY_NAME["deploying"]
    delays = [pipeline.backoff(step, n) for n in range(1, 7)]
    assert delays == sorted(delays)
    assert delays[0] == step.backoff_seconds
    assert delays[1] == 2 * step.backoff_seconds
    assert max(delays) == step.max_backoff_seconds


def test_a_pipeline_that_cannot_succeed_ends_within_a_minute_locally() -> None:
    for step in pipeline.STEPS:
        waits = sum(pipeline.backoff(step, n) for n in range(1, step.max_attempts))
        assert waits < 60, step.name


def test_next_step_walks_the_chain() -> None:
    names = [pipeline.STEPS[0].name]
    while (following := pipeline.next_step(names[-1])) is not None:
        names.append(following.name)
    assert tuple(names) == pipeline.STEP_NAMES


def test_task_priorities_are_the_ones_the_schema_allows() -> None:
    assert pipeline.PRIORITIES == tables.PRIORITIES


def test_step_names_are_unique_across_task_types_and_each_type_walks_its_own_chain() -> None:
    assert len(set(pipeline.ALL_STEP_NAMES)) == len(pipeline.ALL_STEP_NAMES)
    for steps in pipeline.TYPE_STEPS.values():
        names = [steps[0].name]
        while (following := pipeline.next_step(names[-1])) is not None:
            names.append(following.name)
        assert names == [s.name for s in steps]
        assert [s.progress_percent for s in steps] == sorted(s.progress_percent for s in steps)
