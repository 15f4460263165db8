"""``planter``: argument parsing, the environment (PLANTER_URL, PLANTER_TOKEN) and exit codes.

Exit codes: 0 success (a watched task completed); 1 a watched task failed or was cancelled;
2 a usage error; 3 the API refused the request (its problem+json detail is printed);
4 the server could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from planter_cli import commands
from planter_cli.client import DEFAULT_URL, ApiError, Client, Unreachable

EXIT_USAGE, EXIT_API, EXIT_UNREACHABLE = 2, 3, 4


def _output() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    return shared


def _jobs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = sub.add_parser("jobs", help="scheduled jobs", parents=[_output()])
    jobs_sub = jobs.add_subparsers(dest="jobs_action", required=True)
    jobs_sub.add_parser("ls", parents=[_output()])
    job_create = jobs_sub.add_parser("create", parents=[_output()])
    job_create.add_argument("name")
    job_create.add_argument("--schedule", required=True, help="5-field cron")
    job_create.add_argument("--timezone", default="UTC")
    job_create.add_argument("--type", required=True, help="task type, e.g. redeploy")
    job_create.add_argument("--payload", default="{}", help="the task's payload as JSON")
    job_create.add_argument("--priority", choices=["low", "normal", "high"])
    for action in ("pause", "resume", "rm", "runs"):
        jobs_sub.add_parser(action, parents=[_output()]).add_argument("job_id")
    jobs.set_defaults(run=commands.cmd_jobs)


def _admin_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser(
        "admin", help="internal admin routes (signed with STEP_SIGNING_SECRET locally)", parents=[_output()]
    )
    admin_sub = admin.add_subparsers(dest="admin_action", required=True)
    set_tier = admin_sub.add_parser("set-tier", parents=[_output()])
    set_tier.add_argument("email")
    set_tier.add_argument("tier", choices=["free", "pro", "enterprise"])
    users = admin_sub.add_parser("users", parents=[_output()])
    users.add_argument("--email", help="only emails starting with this")
    admin.set_defaults(run=commands.cmd_admin)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="planter", description="Plant software projects with Planter.")
    root.add_argument("--url", default=os.environ.get("PLANTER_URL", DEFAULT_URL), help="API base URL (PLANTER_URL)")
    sub = root.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="start the create-project pipeline", parents=[_output()])
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--mode", choices=["saas", "user"], default="saas")
    create.add_argument("--simulate", help="simulated provider only, e.g. '{\"step_seconds\": 1}'")
    create.add_argument("--idempotency-key")
    create.add_argument("--watch", action="store_true", help="follow it to the end (exit 1 if it fails)")
    create.set_defaults(run=commands.cmd_create)

    watch = sub.add_parser("watch", help="follow a task's progress to its end", parents=[_output()])
    watch.add_argument("task_id")
    watch.set_defaults(run=commands.cmd_watch)

    ls = sub.add_parser("ls", help="list your tasks, newest first", parents=[_output()])
    ls.add_argument("--status", choices=["active", "completed", "failed", "cancelled"])
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(run=commands.cmd_ls)

    cancel = sub.add_parser("cancel", help="cancel an active task", parents=[_output()])
    cancel.add_argument("task_id")
    cancel.set_defaults(run=commands.cmd_cancel)

    me = sub.add_parser("me", help="your profile, plan and usage", parents=[_output()])
    me.add_argument("--name", help="set your display name")
    me.set_defaults(run=commands.cmd_me)

    _jobs_parser(sub)

    chat = sub.add_parser("chat", help="ask the assistant (interactive without a message)", parents=[_output()])
    chat.add_argument("message", nargs="*")
    chat.add_argument("--conversation")
    chat.set_defaults(run=commands.cmd_chat)

    token = sub.add_parser(
        "token", help="a local development token for EMAIL (signed with JWT_SECRET)", parents=[_output()]
    )
    token.add_argument("email")
    token.add_argument("--ttl", type=int, default=3600)
    token.set_defaults(run=commands.cmd_token)

    _admin_parser(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "simulate", None):
        try:
            json.loads(args.simulate)
        except ValueError:
            print("planter: --simulate must be JSON", file=sys.stderr)
            return EXIT_USAGE
    client = Client(args.url, os.environ.get("PLANTER_TOKEN") or None)
    try:
        code: int = args.run(args, client)
        return code
    except ApiError as error:
        if args.json:
            print(json.dumps({"error": error.problem, "status": error.status}), file=sys.stderr)
        else:
            print(f"planter: {error}", file=sys.stderr)
            if error.status == 401 and not client.token:
                print("planter: set PLANTER_TOKEN (locally: planter token you@example.com)", file=sys.stderr)
        return EXIT_API
    except Unreachable as error:
        print(f"planter: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
