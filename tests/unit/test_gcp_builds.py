"""Which earlier build of a step a new attempt adopts, and the tags it finds them by."""

from __future__ import annotations

import pytest

from common.gcp import builds

TASK = "0b7c6c1e-7d7a-4c55-9a57-3f1d2b6d1c01"


def listed(*statuses: str) -> list[dict[str, str]]:
    """Builds as Cloud Build lists them: newest first."""
    return [{"id": f"b{i}", "status": s} for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "adopted"),
    [
        (("QUEUED",), "b0"),
        (("WORKING", "FAILURE"), "b0"),
        (("SUCCESS",), "b0"),
        (("FAILURE", "WORKING"), "b1"),  # a failed retry beside a build that still runs: wait on that one
        (("TIMEOUT", "SUCCESS", "WORKING"), "b1"),  # the newest that did not fail
    ],
)
def test_the_newest_running_or_succeeded_build_is_adopted(statuses: tuple[str, ...], adopted: str) -> None:
    found = builds.adoptable(listed(*statuses))
    assert found is not None and found["id"] == adopted


@pytest.mark.parametrize(
    "statuses",
    [(), ("FAILURE",), ("CANCELLED", "TIMEOUT", "INTERNAL_ERROR", "EXPIRED", "FAILURE"), ("STATUS_UNKNOWN",)],
)
def test_no_build_is_adopted_when_every_earlier_one_ended_without_success(statuses: tuple[str, ...]) -> None:
    assert builds.adoptable(listed(*statuses)) is None


def test_every_attempt_tags_its_build_with_the_step_tag_that_later_attempts_look_for() -> None:
    first, third = builds.build_tags(TASK, "building_release", 1), builds.build_tags(TASK, "building_release", 3)
    step = builds.step_tag(TASK, "building_release")
    assert step == f"planter-building-release-{TASK}"
    assert step in first and step in third and first[-1] != third[-1]
    assert builds.step_tag(TASK, "deploying") not in first  # one step's builds are not another's


def test_the_build_stops_itself_when_the_step_stops_waiting_for_it() -> None:
    config = builds.build_config(
        "https://example.test/o/r.git", "r", "us-central1", "https://api.test/cb", "token", "deploying", 80,
        timeout_seconds=1800.0,
    )  # fmt: skip
    assert config["timeout"] == "1800s"  # Cloud Build's Duration; its default (60 min) would outlive the step
