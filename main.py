"""Entry points only: each deployed Cloud Function, under its own name (--entry-point)."""

import functions_framework

from functions.entry import answer_unrouted, entrypoint

# Registered on the app functions-framework is building while it imports this module (a no-op
# anywhere else): requests its catch-all URL rule cannot match get problem+json, not HTML.
functions_framework.errorhandler(404)(answer_unrouted)
functions_framework.errorhandler(405)(answer_unrouted)

api_projects = entrypoint("api_projects")
api_tasks = entrypoint("api_tasks")
progress_callback = entrypoint("progress_callback")
dashboard = entrypoint("dashboard")
pipeline_step = entrypoint("pipeline_step")
scheduler_tick = entrypoint("scheduler_tick")
healthz = entrypoint("healthz")
openapi = entrypoint("openapi")
api_jobs = entrypoint("api_jobs")
events = entrypoint("events")
admin = entrypoint("admin")
web = entrypoint("web")
