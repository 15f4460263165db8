"""The route table: which deployed function serves which path. The local gateway, every
function's own dispatcher, the OpenAPI document and the API Gateway config all read it."""

from __future__ import annotations

from common import models as m
from common import models_templates
from common.http import Route
from functions import dashboard, ops, progress, projects, scheduler, steps, tasks, templates

_USER_ERRORS = (400, 401, 404, 503)

ROUTES: tuple[Route, ...] = (
    Route(
        method="POST",
        path="/api/v1/projects",
        function="api_projects",
        handler=projects.create_project,
        summary="Start the create-project pipeline",
        auth="user",
        status=202,
        request_model=m.CreateProject,
        response_model=m.Task,
        errors=(400, 401, 413, 415, 422, 429, 503),
    ),
    Route(
        method="GET",
        path="/api/v1/tasks",
        function="api_tasks",
        handler=tasks.list_tasks,
        summary="List the caller's tasks, newest first",
        auth="user",
        query_model=m.TaskListQuery,
        response_model=m.TaskList,
        errors=(400, 401, 422, 503),
    ),
    Route(
        method="GET",
        path="/api/v1/tasks/{task_id}",
        function="api_tasks",
        handler=tasks.get_task,
        summary="Read one task (ETag, If-None-Match)",
        auth="user",
        response_model=m.Task,
        errors=(*_USER_ERRORS, 304),
    ),
    Route(
        method="GET",
        path="/api/v1/tasks/{task_id}/progress",
        function="api_tasks",
        handler=tasks.get_progress,
        summary="The task's progress history, oldest first",
        auth="user",
        response_model=m.ProgressList,
        errors=_USER_ERRORS,
    ),
    Route(
        method="POST",
        path="/api/v1/tasks/{task_id}/cancel",
        function="api_tasks",
        handler=tasks.cancel_task,
        summary="Cancel an active task",
        auth="user",
        response_model=m.Task,
        errors=(*_USER_ERRORS, 409),
    ),
    Route(
        method="POST",
        path="/api/v1/tasks/{task_id}/progress",
        function="progress_callback",
        handler=progress.post_progress,
        summary="Progress callback from an outside worker (task-bound token)",
        auth="callback",
        request_model=m.ProgressCallback,
        response_model=m.Task,
        errors=(400, 401, 404, 409, 413, 415, 422, 503),
    ),
    Route(
        method="GET",
        path="/api/v1/dashboard/active-tasks",
        function="dashboard",
        handler=dashboard.active_tasks,
        summary="The caller's active tasks and today's totals",
        auth="user",
        query_model=m.DashboardQuery,
        response_model=m.ActiveTasks,
        errors=(400, 401, 422, 503),
    ),
    Route(
        method="GET",
        path="/api/v1/dashboard/metrics",
        function="dashboard",
        handler=dashboard.metrics,
        summary="Project health and cost figures",
        auth="user",
        query_model=m.DashboardQuery,
        response_model=m.Metrics,
        errors=(400, 401, 422, 503),
    ),
    Route(
        method="GET",
        path="/api/v1/dashboard/time-series",
        function="dashboard",
        handler=dashboard.time_series,
        summary="Chart data per hour, day or week",
        auth="user",
        query_model=m.TimeSeriesQuery,
        response_model=m.TimeSeries,
        errors=(400, 401, 422, 503),
    ),
    Route(
        method="POST",
        path="/internal/steps",
        function="pipeline_step",
        handler=steps.run_step,
        summary="Run one pipeline step (Cloud Tasks only)",
        auth="internal",
        request_model=m.StepRequest,
        errors=(400, 401, 413, 415, 422, 503),
    ),
    Route(
        method="POST",
        path="/internal/scheduler/tick",
        function="scheduler_tick",
        handler=scheduler.tick,
        summary="Re-enqueue or fail stalled steps (Cloud Scheduler only)",
        auth="internal",
        response_model=m.TickResult,
        errors=(401, 503),
    ),
    Route(
        method="GET",
        path="/healthz",
        function="healthz",
        handler=ops.healthz,
        summary="Liveness and database reachability",
        auth="none",
        response_model=m.Health,
        errors=(503,),
    ),
    Route(
        method="GET",
        path="/openapi.json",
        function="openapi",
        handler=ops.openapi,
        summary="This document",
        auth="none",
    ),
    Route(
        method="GET",
        path="/api/v1/templates",
        function="api_projects",
        handler=templates.list_templates,
        summary="The template repositories a project can be planted from",
        auth="user",
        response_model=models_templates.TemplateList,
        errors=_USER_ERRORS,
    ),
)

FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(r.function for r in ROUTES))


def routes_of(function: str) -> tuple[Route, ...]:
    return tuple(r for r in ROUTES if r.function == function)
