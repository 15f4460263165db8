"""The route table: which deployed function serves which path. The local gateway, every
function's own dispatcher, the OpenAPI document and the API Gateway config all read it."""

from __future__ import annotations

from common import models as m
from common.http import Route

_USER_ERRORS = (400, 401, 404, 503)

ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/projects", "api_projects", "functions.projects:create_project",
          "Start the create-project pipeline", "user", 202, m.CreateProject, None, m.Task,
          (400, 401, 413, 415, 422, 429, 503)),
    Route("GET", "/api/v1/tasks", "api_tasks", "functions.tasks:list_tasks",
          "List the caller's tasks, newest first", "user", 200, None, m.TaskListQuery, m.TaskList,
          (400, 401, 422, 503)),
    Route("GET", "/api/v1/tasks/{task_id}", "api_tasks", "functions.tasks:get_task",
          "Read one task (ETag, If-None-Match)", "user", 200, None, None, m.Task, (*_USER_ERRORS, 304)),
    Route("GET", "/api/v1/tasks/{task_id}/progress", "api_tasks", "functions.tasks:get_progress",
          "The task's progress history, oldest first", "user", 200, None, None, m.ProgressList, _USER_ERRORS),
    Route("POST", "/api/v1/tasks/{task_id}/cancel", "api_tasks", "functions.tasks:cancel_task",
          "Cancel an active task", "user", 200, None, None, m.Task, (*_USER_ERRORS, 409)),
    Route("POST", "/api/v1/tasks/{task_id}/progress", "progress_callback", "functions.progress:post_progress",
          "Progress callback from an outside worker (task-bound token)", "callback", 200,
          m.ProgressCallback, None, m.Task, (400, 401, 404, 409, 413, 415, 422, 503)),
    Route("GET", "/api/v1/dashboard/active-tasks", "dashboard", "functions.dashboard:active_tasks",
          "The caller's active tasks and today's totals", "user", 200, None, m.DashboardQuery, m.ActiveTasks,
          (401, 422, 503)),
    Route("GET", "/api/v1/dashboard/metrics", "dashboard", "functions.dashboard:metrics",
          "Project health and cost figures", "user", 200, None, m.DashboardQuery, m.Metrics, (401, 422, 503)),
    Route("GET", "/api/v1/dashboard/time-series", "dashboard", "functions.dashboard:time_series",
          "Chart data per hour, day or week", "user", 200, None, m.TimeSeriesQuery, m.TimeSeries,
          (400, 401, 422, 503)),
    Route("POST", "/internal/steps", "pipeline_step", "functions.steps:run_step",
          "Run one pipeline step (Cloud Tasks only)", "internal", 200, m.StepRequest, None, None,
          (401, 413, 415, 422, 503)),
    Route("POST", "/internal/scheduler/tick", "scheduler_tick", "functions.scheduler:tick",
          "Re-enqueue or fail stalled steps (Cloud Scheduler only)", "internal", 200, None, None, m.TickResult,
          (401, 503)),
    Route("GET", "/healthz", "healthz", "functions.ops:healthz",
          "Liveness and database reachability", "none", 200, None, None, m.Health, (503,)),
    Route("GET", "/openapi.json", "openapi", "functions.ops:openapi",
          "This document", "none", 200),
)

FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(r.function for r in ROUTES))


def routes_of(function: str) -> tuple[Route, ...]:
    return tuple(r for r in ROUTES if r.function == function)
