"""Entry points only: each deployed Cloud Function, under its own name (--entry-point), around the
instance's one runtime (built on the first request: functions/entry.py)."""

import functions_framework

from functions.entry import entrypoint, instance_runtime, unrouted

runtime = instance_runtime().get

# Registered on the app functions-framework is building while it imports this module (a no-op
# anywhere else): requests its catch-all URL rule cannot match get problem+json, not HTML.
functions_framework.errorhandler(404)(unrouted(runtime))
functions_framework.errorhandler(405)(unrouted(runtime))

api_projects = entrypoint("api_projects", runtime)
api_tasks = entrypoint("api_tasks", runtime)
progress_callback = entrypoint("progress_callback", runtime)
dashboard = entrypoint("dashboard", runtime)
pipeline_step = entrypoint("pipeline_step", runtime)
scheduler_tick = entrypoint("scheduler_tick", runtime)
healthz = entrypoint("healthz", runtime)
openapi = entrypoint("openapi", runtime)
api_jobs = entrypoint("api_jobs", runtime)
events = entrypoint("events", runtime)
admin = entrypoint("admin", runtime)
web = entrypoint("web", runtime)
