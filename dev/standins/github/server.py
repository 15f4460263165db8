"""Serving the stand-in: in a thread (tests) or as a process (`python -m dev.standins.github`)."""

from __future__ import annotations

import argparse
import logging
import pathlib

from werkzeug.serving import make_server

from dev.standins.github.app import GitHubStandIn
from dev.standins.github.templates import PLANTER_ORG, TEMPLATES
from dev.standins.serving import ServedOnThread, serve_alone


class Running(ServedOnThread):
    """The WSGI ``app`` behind its server; ``start`` serves it from a thread."""

    def __init__(self, app: GitHubStandIn, port: int) -> None:
        super().__init__(make_server("127.0.0.1", port, app, threaded=True), "github-standin")
        self.app = app
        app.base_url = self.base_url


def serve(root: pathlib.Path, port: int = 0) -> Running:
    """A seeded stand-in bound to 127.0.0.1 (``port`` 0: any free one), not yet answering."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the stack's own
    running = Running(GitHubStandIn(root), port)
    running.app.seed(PLANTER_ORG, TEMPLATES)
    return running


def start(root: pathlib.Path, port: int = 0) -> Running:
    """A seeded stand-in listening on 127.0.0.1 (``port`` 0: any free one), served by a thread."""
    return serve(root, port).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="The local GitHub stand-in")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    args = parser.parse_args()
    serve_alone("GitHub", serve(args.root, args.port))


if __name__ == "__main__":
    main()
