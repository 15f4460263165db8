"""The dashboard routes: active tasks, metrics, time series (all scoped to the caller)."""

from __future__ import annotations

from common.http import Call, Reply
from common.models import DashboardQuery, TimeSeriesQuery, TypedDashboardQuery
from common.services import dashboard

# Figures change every few seconds while a pipeline runs: browsers revalidate every time, and the
# router's conditional_reply (every GET under /api/v1/dashboard/) answers 304 while they are unchanged.
_NO_STORE = {"Cache-Control": "private, no-cache"}


def active_tasks(call: Call) -> Reply:
    query = call.query(DashboardQuery)
    return Reply(dashboard.active_tasks(call.rt, call.user, query.tz), headers=dict(_NO_STORE))


def metrics(call: Call) -> Reply:
    query = call.query(TypedDashboardQuery)
    return Reply(dashboard.metrics(call.rt, call.user, query.tz, task_type=query.type), headers=dict(_NO_STORE))


def time_series(call: Call) -> Reply:
    return Reply(dashboard.time_series(call.rt, call.user, call.query(TimeSeriesQuery)), headers=dict(_NO_STORE))
