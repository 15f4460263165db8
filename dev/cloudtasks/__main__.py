"""`python -m dev.cloudtasks --port PORT --state FILE`: serve the stand-in until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
import threading
import time
from typing import Any

from dev.cloudtasks.dispatcher import Dispatcher
from dev.cloudtasks.server import make_server
from dev.cloudtasks.store import Store

_output = threading.Lock()


def log(message: str) -> None:
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    with _output:  # one write per line: dispatch threads must not interleave
        sys.stdout.write(f"[cloudtasks {stamp}] {message}\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=pathlib.Path, required=True, help="the journal of queues and tasks")
    args = parser.parse_args(argv)

    store = Store(args.state)
    dispatcher = Dispatcher(store, log)
    server = make_server(args.port, store)
    threading.Thread(target=dispatcher.run, daemon=True, name="dispatcher").start()

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on 127.0.0.1:{args.port}; {len(store.queues)} queue(s), {len(store.tasks)} pending task(s)")
    server.serve_forever()
    dispatcher.stop()
    store.close()
    log("stopped")
    sys.exit(0)


if __name__ == "__main__":
    main()
