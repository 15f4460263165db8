"""Entry points only: each deployed Cloud Function, under its own name (--entry-point)."""

from functions.entry import entrypoint

api_projects = entrypoint("api_projects")
api_tasks = entrypoint("api_tasks")
progress_callback = entrypoint("progress_callback")
dashboard = entrypoint("dashboard")
pipeline_step = entrypoint("pipeline_step")
scheduler_tick = entrypoint("scheduler_tick")
healthz = entrypoint("healthz")
openapi = entrypoint("openapi")
