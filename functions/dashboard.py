"""The dashboard routes: active tasks, metrics, time series (all scoped to the caller)."""

from __future__ import annotations

from common.errors import PlanterError
from common.http import Call, Reply


class _NotYet(PlanterError):
    status, title, type_slug = 501, "Not Implemented", "not-implemented"


def active_tasks(call: Call) -> Reply:
    raise _NotYet("the dashboard is being built")


def metrics(call: Call) -> Reply:
    raise _NotYet("the dashboard is being built")


def time_series(call: Call) -> Reply:
    raise _NotYet("the dashboard is being built")
