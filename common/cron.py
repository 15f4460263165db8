"""Cron schedules in a job's own time zone, through cronsim.

cronsim walks wall-clock times in the zone: a time that does not exist (spring forward) fires once
at the next valid time, a repeated one (fall back) fires once; croniter fired twice on a repeated
hour in the check made for issue 16. Everything returned is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.errors import ValidationFailed

MAX_SCHEDULE_LENGTH = 100


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; 422 naming ``timezone`` when there is no such zone."""
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown time zone {name[:64]!r}", errors={"timezone": "not an IANA time zone name, e.g. Europe/Paris"}
        ) from None


def next_run(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` names in ``timezone`` (UTC).

    422 naming ``schedule`` when it is not a valid 5-field cron expression or never fires."""
    from cronsim import CronSim, CronSimError

    local_zone = zone(timezone)
    if len(schedule.split()) != 5:
        raise ValidationFailed(
            "the schedule is not a 5-field cron expression",
            errors={"schedule": "5 fields: minute hour day-of-month month day-of-week"},
        )
    try:
        following = next(CronSim(schedule, after.astimezone(local_zone)))
    except CronSimError as error:
        raise ValidationFailed(f"the schedule is not valid: {error}", errors={"schedule": str(error)}) from None
    except StopIteration:
        raise ValidationFailed("the schedule never fires", errors={"schedule": "names no future time"}) from None
    return following.astimezone(UTC)
