"""Drawing a task's progress: one bar for the task and one per step, redrawn in place on a
terminal, one line per event otherwise (logs, pipes), or JSON lines with --json."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

BAR = 24
_MARKS = {"succeeded": "done", "failed": "FAILED", "skipped": "skipped", "pending": "", "waiting": "waiting"}


def bar(fraction: float, width: int = BAR) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _step_fraction(step: dict[str, Any]) -> float:
    return {"succeeded": 1.0, "skipped": 0.0, "failed": 1.0, "running": 0.5, "waiting": 0.5}.get(step["status"], 0.0)


def task_lines(task: dict[str, Any]) -> list[str]:
    """The task's bar, its message, then a bar per step with its status and attempts."""
    percent = int(task.get("progress_percent") or 0)
    lines = [f"{task.get('project_name', '')} {bar(percent / 100)} {percent:3d}%  {task.get('status')}"]
    lines.append(f"  {task.get('message') or ''}"[:100])
    for step in task.get("steps") or []:
        status = step["status"]
        note = _MARKS.get(status, status)
        if step.get("attempts", 0) > 1 or (status == "running" and step.get("attempts")):
            note += f" (attempt {step['attempts']})"
        if step.get("error") and status != "succeeded":
            note += f": {step['error']}"
        lines.append(f"  {step['name']:<22} {bar(_step_fraction(step), 12)} {note}"[:140])
    return lines


class Renderer:
    """Where watch output goes. ``live`` redraws the block in place (a terminal)."""

    def __init__(self, out: TextIO = sys.stdout, *, as_json: bool = False, live: bool | None = None) -> None:
        self.out = out
        self.as_json = as_json
        self.live = out.isatty() if live is None else live
        self._drawn = 0

    def progress(self, event: dict[str, Any], task: dict[str, Any] | None, event_id: str | None) -> None:
        if self.as_json:
            self._json({"event": "progress", "id": event_id, "data": event})
        elif self.live and task is not None:
            self._redraw(task_lines(task))
        else:
            percent = int(event.get("progress_percent") or 0)
            self._print(f"{bar(percent / 100)} {percent:3d}%  {event.get('status')}: {event.get('message', '')}")

    def note(self, text: str) -> None:
        """Something about the connection (a reconnect), not about the task."""
        if self.as_json:
            self._json({"event": "note", "data": text})
        else:
            print(text, file=sys.stderr, flush=True)

    def end(self, task: dict[str, Any]) -> None:
        if self.as_json:
            self._json({"event": "end", "data": task})
            return
        if self.live:
            self._redraw(task_lines(task))
        else:
            for line in task_lines(task):
                self._print(line)
        self._print(summary(task))

    def _json(self, value: Any) -> None:
        print(json.dumps(value), file=self.out, flush=True)

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        self._drawn = 0

    def _redraw(self, lines: list[str]) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")  # back to the first line of the block
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self.out.flush()
        self._drawn = len(lines)


def summary(task: dict[str, Any]) -> str:
    status = task.get("status")
    if status == "completed":
        urls = [task.get(k) for k in ("repo_url", "deployment_url") if task.get(k)]
        return "completed" + (": " + " ".join(str(u) for u in urls) if urls else "")
    if status == "failed":
        return f"failed: {task.get('error_message') or 'no error recorded'}"
    return str(status)
