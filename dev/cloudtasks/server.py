"""The Cloud Tasks v2 REST surface, as the real client's REST transport calls it.

Errors are google.rpc.Status JSON with the HTTP status Cloud Tasks gives them (409
ALREADY_EXISTS, 404 NOT_FOUND, 400 INVALID_ARGUMENT), which the client turns into
google.api_core exceptions by HTTP status.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dev.cloudtasks.model import QUEUE_NAME, TASK_ID, ApiError, Queue, Task, get
from dev.cloudtasks.store import Store
from dev.standins.serving import QuietThreadingServer

_LOCATION = r"projects/[^/:]+/locations/[^/:]+"
_QUEUE = _LOCATION + r"/queues/[^/:]+"
_TASK = _QUEUE + r"/tasks/[^/:]+"
Handler = Callable[["Api", re.Match[str], dict[str, Any], dict[str, list[str]]], dict[str, Any]]


class Api:
    """Each method: one REST call; returns the response body or raises ApiError."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_queue(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        name = str(body.get("name", ""))
        if not QUEUE_NAME.match(name) or not name.startswith(match["parent"] + "/"):
            raise ApiError(400, "INVALID_ARGUMENT", f"bad queue name {name!r} for parent {match['parent']}")
        with self.store.lock:
            if name in self.store.queues:
                raise ApiError(409, "ALREADY_EXISTS", "Requested entity already exists")
            queue = Queue(name)
            queue.apply(body)
            self.store.put_queue(queue)
            return queue.to_json()

    def update_queue(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        # UpdateQueue creates the queue when it does not exist (Cloud Tasks reference).
        mask_param = ",".join(query.get("updateMask", query.get("update_mask", [])))
        mask = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), p) for p in mask_param.split(",") if p} or None
        with self.store.lock:
            queue = self.store.queues.get(match["name"]) or Queue(match["name"])
            queue.apply(body, mask)
            self.store.put_queue(queue)
            return queue.to_json()

    def get_queue(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        return self.store.queue(match["name"]).to_json()

    def list_queues(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        with self.store.lock:
            queues = [q.to_json() for n, q in sorted(self.store.queues.items()) if n.startswith(match["parent"] + "/")]
        return {"queues": queues}

    def delete_queue(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        self.store.delete_queue(match["name"])
        return {}

    def queue_action(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        with self.store.lock:
            queue = self.store.queue(match["name"])
            if match["action"] == "purge":
                self.store.purge(queue.name)
            else:
                queue.state = "PAUSED" if match["action"] == "pause" else "RUNNING"
                self.store.put_queue(queue)
            return queue.to_json()

    def create_task(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        parent = match["parent"]
        data = get(body, "task") or {}
        name = str(data.get("name") or "")
        if name and not name.startswith(parent + "/tasks/"):
            raise ApiError(400, "INVALID_ARGUMENT", f"task name {name!r} is not in queue {parent}")
        task_id = name.rsplit("/", 1)[1] if name else uuid.uuid4().hex
        if not TASK_ID.match(task_id):
            raise ApiError(400, "INVALID_ARGUMENT", f"bad task id {task_id!r}")
        with self.store.lock:
            self.store.queue(parent)
            task = Task.from_json(parent, data, task_id, self.store.clock())
            self.store.add_task(task)
            return task.to_json()

    def get_task(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        return self.store.task(match["name"]).to_json()

    def list_tasks(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        with self.store.lock:
            self.store.queue(match["parent"])
            tasks = [t.to_json() for t in self.store.tasks.values() if t.queue_name == match["parent"]]
        return {"tasks": sorted(tasks, key=lambda t: str(t["scheduleTime"]))}

    def delete_task(self, match: re.Match[str], body: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        with self.store.lock:
            self.store.task(match["name"])
            self.store.finish(match["name"])
        return {}


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(rf"/v2/(?P<parent>{_LOCATION})/queues"), Api.create_queue),
    ("GET", re.compile(rf"/v2/(?P<parent>{_LOCATION})/queues"), Api.list_queues),
    ("PATCH", re.compile(rf"/v2/(?P<name>{_QUEUE})"), Api.update_queue),
    ("GET", re.compile(rf"/v2/(?P<name>{_QUEUE})"), Api.get_queue),
    ("DELETE", re.compile(rf"/v2/(?P<name>{_QUEUE})"), Api.delete_queue),
    ("POST", re.compile(rf"/v2/(?P<name>{_QUEUE}):(?P<action>purge|pause|resume)"), Api.queue_action),
    ("POST", re.compile(rf"/v2/(?P<parent>{_QUEUE})/tasks"), Api.create_task),
    ("GET", re.compile(rf"/v2/(?P<parent>{_QUEUE})/tasks"), Api.list_tasks),
    ("GET", re.compile(rf"/v2/(?P<name>{_TASK})"), Api.get_task),
    ("DELETE", re.compile(rf"/v2/(?P<name>{_TASK})"), Api.delete_task),
]


def make_server(port: int, store: Store) -> ThreadingHTTPServer:
    api = Api(store)

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses its connection
        # Headers and body leave in one segment without waiting for an ACK: with Nagle's algorithm
        # and the client's delayed ACK every call took ~40 ms.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else {}
                for method, pattern, handler in ROUTES:
                    match = pattern.fullmatch(urllib.parse.unquote(url.path))
                    if match and method == self.command:
                        self._answer(200, handler(api, match, body, urllib.parse.parse_qs(url.query)))
                        return
                raise ApiError(404, "NOT_FOUND", f"no such method: {self.command} {url.path}")
            except ApiError as error:
                self._answer(error.http_status, error.body())
            except (ValueError, KeyError, TypeError) as error:
                self._answer(400, ApiError(400, "INVALID_ARGUMENT", str(error)).body())

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per dispatch is logged; API calls are not

    class Server(QuietThreadingServer):
        daemon_threads = True

    return Server(("127.0.0.1", port), RequestHandler)
