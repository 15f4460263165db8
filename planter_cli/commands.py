"""The commands: each takes the parsed arguments and a client, prints, and returns an exit code."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from planter_cli import local
from planter_cli.client import Client
from planter_cli.render import Renderer
from planter_cli.watch import watch

EXIT_OK, EXIT_TASK_FAILED = 0, 1


def _print(value: Any, args: argparse.Namespace, text: str) -> None:
    print(json.dumps(value, indent=2) if args.json else text)


def _task_line(task: dict[str, Any]) -> str:
    return (
        f"{task['task_id']}  {task['status']:<20} {task['progress_percent']:3d}%  "
        f"{task.get('project_name') or task.get('type', '')}"
    )


def _finished_code(task: dict[str, Any]) -> int:
    return EXIT_OK if task.get("status") == "completed" else EXIT_TASK_FAILED


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    body: dict[str, Any] = {"project_name": args.name, "project_description": args.description, "mode": args.mode}
    if args.simulate:
        body["simulate"] = json.loads(args.simulate)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    task = client.call("POST", "/api/v1/projects", body, headers)
    if not args.watch:
        _print(task, args, f"created {_task_line(task)}")
        return EXIT_OK
    if not args.json:
        print(f"created task {task['task_id']}; watching (Ctrl-C stops watching, not the task)", flush=True)
    return _finished_code(watch(client, task["task_id"], Renderer(as_json=args.json)))


def cmd_watch(args: argparse.Namespace, client: Client) -> int:
    return _finished_code(watch(client, args.task_id, Renderer(as_json=args.json)))


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    query = {k: v for k, v in {"status": args.status, "limit": args.limit}.items() if v}
    page = client.call("GET", "/api/v1/tasks?" + urllib.parse.urlencode(query))
    _print(page, args, "\n".join(_task_line(t) for t in page["tasks"]) or "no tasks")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    task = client.call("POST", f"/api/v1/tasks/{args.task_id}/cancel")
    _print(task, args, f"cancelled {_task_line(task)}")
    return EXIT_OK


def cmd_me(args: argparse.Namespace, client: Client) -> int:
    me = client.call("PATCH", "/api/v1/me", {"name": args.name}) if args.name else client.call("GET", "/api/v1/me")
    sub, usage = me["subscription"], me["usage"]
    limit = "unlimited" if sub["monthly_operations_limit"] < 0 else sub["monthly_operations_limit"]
    text = (
        f"{me['email']} ({me.get('name') or 'no name'}), tier {sub['tier']}: "
        f"{usage['ai_operations']} + {usage['reserved_ai_operations']} reserved of {limit} AI operations "
        f"({sub['period_start']} to {sub['period_end']})"
    )
    _print(me, args, text)
    return EXIT_OK


def _job_line(job: dict[str, Any]) -> str:
    return f"{job['job_id']}  {job['status']:<7} {job['schedule']:<15} next {job.get('next_run')}  {job['name']}"


def cmd_jobs(args: argparse.Namespace, client: Client) -> int:
    action = args.jobs_action
    if action == "ls":
        page = client.call("GET", "/api/v1/jobs")
        _print(page, args, "\n".join(_job_line(j) for j in page["jobs"]) or "no jobs")
    elif action == "create":
        task: dict[str, Any] = {"type": args.type, "payload": json.loads(args.payload)}
        if args.priority:
            task["priority"] = args.priority
        body = {"name": args.name, "schedule": args.schedule, "timezone": args.timezone, "task": task}
        job = client.call("POST", "/api/v1/jobs", body)
        _print(job, args, f"created {_job_line(job)}")
    elif action in ("pause", "resume"):
        job = client.call("POST", f"/api/v1/jobs/{args.job_id}/{action}")
        _print(job, args, _job_line(job))
    elif action == "rm":
        client.call("DELETE", f"/api/v1/jobs/{args.job_id}")
        _print({"deleted": args.job_id}, args, f"deleted {args.job_id}")
    elif action == "runs":
        page = client.call("GET", f"/api/v1/jobs/{args.job_id}/runs")
        _print(page, args, "\n".join(_task_line(t) for t in page["runs"]) or "no runs")
    return EXIT_OK


def cmd_chat(args: argparse.Namespace, client: Client) -> int:
    conversation = args.conversation
    messages = [" ".join(args.message)] if args.message else None
    interactive = messages is None
    while True:
        if interactive:
            try:
                line = input("you> ").strip()
            except EOFError:
                return EXIT_OK
            if not line:
                continue
            messages = [line]
        assert messages is not None
        body: dict[str, Any] = {"message": messages[0]}
        if conversation:
            body["conversation_id"] = conversation
        answer = client.call("POST", "/api/v1/chat", body)
        conversation = answer["conversation_id"]
        reply = answer["messages"][-1]
        _print(answer, args, f"planter> {reply['content']}")
        if not interactive:
            return EXIT_OK


def cmd_token(args: argparse.Namespace, client: Client) -> int:
    print(local.user_token(args.email, args.ttl))
    return EXIT_OK


def cmd_admin(args: argparse.Namespace, client: Client) -> int:
    admin = Client(client.base_url, None, client.timeout)
    if args.admin_action == "set-tier":
        raw = json.dumps({"email": args.email, "tier": args.tier}).encode()
        with admin.open(
            "POST",
            "/internal/admin/subscriptions",
            raw,
            {"Content-Type": "application/json", **local.admin_headers(raw)},
        ) as response:
            user = json.loads(response.read())
        _print(user, args, f"{user['email']} is now on {user['tier']} ({user['monthly_operations_limit']} a month)")
    else:
        path = "/internal/admin/users" + ("?" + urllib.parse.urlencode({"email": args.email}) if args.email else "")
        with admin.open("GET", path, None, local.admin_headers(path.encode())) as response:
            page = json.loads(response.read())
        lines = [f"{u['email']:<40} {u['tier']:<10} {u['usage']['ai_operations']} AI ops" for u in page["users"]]
        _print(page, args, "\n".join(lines) or "no users")
    return EXIT_OK
