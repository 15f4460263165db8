"""Serving the stand-in: in a thread (tests) or as a process (`python -m dev.standins.github`)."""

from __future__ import annotations

import argparse
import logging
import pathlib
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server

from dev.standins.github.app import GitHubStandIn
from dev.standins.github.templates import PLANTER_ORG, TEMPLATES


@dataclass
class Running:
    app: GitHubStandIn
    server: Any
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.app.base_url

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def start(root: pathlib.Path, port: int = 0) -> Running:
    """A seeded stand-in listening on 127.0.0.1 (``port`` 0: any free one), served by a thread."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the stack's own
    app = GitHubStandIn(root)
    server = make_server("127.0.0.1", port, app, threaded=True)
    app.base_url = f"http://127.0.0.1:{server.server_port}"
    app.seed(PLANTER_ORG, TEMPLATES)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="github-standin")
    thread.start()
    return Running(app, server, thread)


def main() -> None:
    parser = argparse.ArgumentParser(description="The local GitHub stand-in")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    args = parser.parse_args()
    running = start(args.root, args.port)
    print(f"GitHub stand-in on {running.base_url}", flush=True)
    running.thread.join()


if __name__ == "__main__":
    main()
