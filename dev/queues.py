"""Create every configured Cloud Tasks queue (one per task priority) in the local emulator.

The local stack runs it once the emulator listens, with the functions' environment, so the queue
names come from the one place production reads them too (common/config.py, Settings.queue_names).
"""

from __future__ import annotations

from common.config import load_settings
from common.queue import CloudTasksEnqueuer


def main() -> None:
    settings = load_settings()
    CloudTasksEnqueuer(settings).ensure_queues()
    print(" ".join(settings.queue_names[p] for p in ("high", "normal", "low")), flush=True)


if __name__ == "__main__":
    main()
