"""A local stand-in for the Cloud Tasks v2 API, driven by the real google-cloud-tasks client.

It speaks the REST surface Planter uses (queues: create, get, patch, list, delete, purge, pause,
resume; tasks: create, get, list, delete) and dispatches HTTP tasks with production's semantics:
the queue's rate limits and retry configuration, ``schedule_time``, the task's dispatch deadline,
``Retry-After`` on 429/503, task-name de-duplication and the X-CloudTasks-* headers. Queues and
pending tasks are journalled to a file, so they survive a restart of the process.

A test double of the network: it lives in dev/, never in a deployed function. docs/DESIGN.md
("The local Cloud Tasks stand-in") lists where it differs from production.

    python -m dev.cloudtasks --port 8123 --state .local/cloudtasks.jsonl
"""
