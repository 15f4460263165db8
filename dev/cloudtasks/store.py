"""The stand-in's state: queues, pending tasks and recently used task names, journalled to a file.

Every change is appended to a JSON-lines journal and flushed before the API answers, so a task
the client was told exists survives a kill of the process (the OS holds the written bytes). On
start the journal is replayed and rewritten compactly.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
from typing import Any

from dev.cloudtasks.model import ApiError, Queue, Task

# Cloud Tasks refuses a task name used within the last hour (queues created through the API).
NAME_REUSE_SECONDS = 3600.0
COMPACT_AFTER_LINES = 20_000


class Store:
    def __init__(self, path: pathlib.Path, clock: Any = time.time) -> None:
        self.path = path
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # dispatchers wait on it for new work
        self.queues: dict[str, Queue] = {}
        self.tasks: dict[str, Task] = {}
        self.used_names: dict[str, float] = {}  # task name -> when it was executed or deleted
        self._lines = 0
        self._load()
        self._compact()

    # --- journal -----------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        for line in self.path.read_text().splitlines():
            try:
                op, data = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill mid-write: the change was never acknowledged
            if op == "queue":
                self.queues[data["name"]] = Queue.from_record(data)
            elif op == "queue-":
                self.queues.pop(data, None)
            elif op == "task":
                self.tasks[data["name"]] = Task.from_record(data)
            elif op == "task-":
                self.tasks.pop(data[0], None)
                self.used_names[data[0]] = data[1]

    def _compact(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        horizon = self.clock() - NAME_REUSE_SECONDS
        self.used_names = {n: t for n, t in self.used_names.items() if t > horizon}
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as out:
            for queue in self.queues.values():
                out.write(json.dumps(["queue", queue.to_record()]) + "\n")
            for task in self.tasks.values():
                out.write(json.dumps(["task", task.to_record()]) + "\n")
            for name, when in self.used_names.items():
                out.write(json.dumps(["task-", [name, when]]) + "\n")
        temporary.replace(self.path)
        self._lines = len(self.queues) + len(self.tasks) + len(self.used_names)
        self._journal = self.path.open("a")

    def _write(self, op: str, data: Any) -> None:
        self._journal.write(json.dumps([op, data]) + "\n")
        self._journal.flush()
        self._lines += 1
        if self._lines > COMPACT_AFTER_LINES:
            self._journal.close()
            self._compact()
        self.changed.notify_all()

    # --- queues ------------------------------------------------------------------------------
    def queue(self, name: str) -> Queue:
        with self.lock:
            if name not in self.queues:
                raise ApiError(404, "NOT_FOUND", f"Requested entity was not found: queue {name}")
            return self.queues[name]

    def put_queue(self, queue: Queue) -> None:
        with self.lock:
            self.queues[queue.name] = queue
            self._write("queue", queue.to_record())

    def delete_queue(self, name: str) -> None:
        with self.lock:
            self.queue(name)
            self.purge(name)
            del self.queues[name]
            self._write("queue-", name)

    def purge(self, queue_name: str) -> None:
        with self.lock:
            for name in [n for n, t in self.tasks.items() if t.queue_name == queue_name]:
                self.finish(name)

    # --- tasks -------------------------------------------------------------------------------
    def add_task(self, task: Task) -> None:
        with self.lock:
            used = self.used_names.get(task.name)
            if task.name in self.tasks or (used is not None and self.clock() - used < NAME_REUSE_SECONDS):
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    "The task cannot be created because a task with this name existed too recently.",
                )
            self.tasks[task.name] = task
            self._write("task", task.to_record())

    def task(self, name: str) -> Task:
        with self.lock:
            if name not in self.tasks:
                raise ApiError(404, "NOT_FOUND", f"Requested entity was not found: task {name}")
            return self.tasks[name]

    def save_task(self, task: Task) -> None:
        """Record a task's new attempt counts or schedule (it is still pending)."""
        with self.lock:
            if task.name in self.tasks:
                self._write("task", task.to_record())

    def finish(self, name: str) -> None:
        """The task succeeded, was given up on, or was deleted: gone, its name kept an hour."""
        with self.lock:
            if self.tasks.pop(name, None) is not None:
                self.used_names[name] = self.clock()
                self._write("task-", [name, self.used_names[name]])

    def close(self) -> None:
        with self.lock:
            self._journal.close()
