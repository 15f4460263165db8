"""Reading, listing and cancelling tasks, for the browser."""

from __future__ import annotations

from common.http import Call, Reply, if_none_match
from common.models import TaskListQuery
from common.services import tasks


def get_task(call: Call) -> Reply:
    found = tasks.get_task(call.rt, call.uuid_param("task_id"), call.user)
    headers = {"ETag": found.etag, "Cache-Control": "private, no-cache"}
    if if_none_match(call.request, found.etag):
        return Reply(None, 304, headers)
    return Reply(found.task, 200, headers)


def get_progress(call: Call) -> Reply:
    return Reply(tasks.get_progress(call.rt, call.uuid_param("task_id"), call.user))


def list_tasks(call: Call) -> Reply:
    query = call.query(TaskListQuery)
    return Reply(
        tasks.list_tasks(
            call.rt,
            call.user,
            status=query.status,
            limit=query.limit,
            cursor=query.cursor,
            task_type=query.type,
            priority=query.priority,
        )
    )


def cancel_task(call: Call) -> Reply:
    return Reply(tasks.cancel_task(call.rt, call.uuid_param("task_id"), call.user))
