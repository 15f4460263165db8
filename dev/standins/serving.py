"""How every stand-in is served: on a daemon thread of this process (make dev, tests), or alone."""

from __future__ import annotations

import http.server
import sys
import threading
from typing import Any, Self


class QuietThreadingServer(http.server.ThreadingHTTPServer):
    """A client that hangs up mid-request (Planter's functions killed by the fault run) is routine
    here, not an error worth socketserver's traceback on stderr; anything else is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ServedOnThread:
    """``server`` (any ``http.server.HTTPServer``) answering from a daemon thread once started."""

    def __init__(self, server: http.server.HTTPServer, thread_name: str) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True, name=thread_name)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_alone(name: str, standin: ServedOnThread) -> None:
    """`python -m dev.standins...`: say where it listens, then serve until the process is stopped."""
    standin.start()
    print(f"{name} stand-in on {standin.base_url}", flush=True)
    standin.thread.join()
