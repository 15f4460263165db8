"""Handing pipeline steps to Cloud Tasks: signed HTTP tasks with deterministic names."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any, Protocol

from common.auth import SIGNATURE_HEADER, sign_body
from common.config import Settings
from common.log import get_logger

logger = get_logger("planter.queue")
DISPATCH_DEADLINE_SECONDS = 1800


class Enqueuer(Protocol):
    def enqueue_step(self, task_id: str, step: str, generation: int, priority: str = "normal") -> None:
        """Ask for ``step`` of ``task_id`` to be delivered to the step handler (at least once),
        through the queue of the task's priority."""

    def schedule_step(
        self, task_id: str, step: str, generation: int, *, at: datetime, suffix: str, priority: str = "normal"
    ) -> None:
        """Deliver ``step`` again at ``at`` (Cloud Tasks schedule_time), under a name ending in ``suffix``:
        whoever asks for the same (step, suffix) again gets the same name, so it is created once."""


def task_name(task_id: str, step: str, generation: int, suffix: str = "") -> str:
    """One name per (task, step, generation): a repeated enqueue of the same handover is a no-op."""
    name = f"{task_id}-{step}-{generation}" + (f"-{suffix}" if suffix else "")
    return name.replace("_", "-")


def step_body(task_id: str, step: str, generation: int) -> bytes:
    return json.dumps({"task_id": task_id, "step": step, "generation": generation}, separators=(",", ":")).encode()


def tasks_client(settings: Settings) -> Any:
    """The real google-cloud-tasks client over its REST transport: production's endpoint with the
    instance's credentials (ADC), or the endpoint CLOUD_TASKS_ENDPOINT names (the local stand-in).

    REST, not gRPC, in production too: one transport, the one the local stack exercises, and a
    cheaper construction on a cold start (docs/DESIGN.md, "The local Cloud Tasks stand-in").
    """
    # Imported on first use: the client library costs ~0.65 s, and only step producers need it.
    from google.cloud import tasks_v2

    if not settings.tasks_endpoint:
        return tasks_v2.CloudTasksClient(transport="rest")
    from google.auth.credentials import AnonymousCredentials

    # A plain-HTTP endpoint cannot carry a Google token (and the stand-in asks for none).
    plain_http = settings.tasks_endpoint.startswith("http://")
    credentials = AnonymousCredentials() if plain_http else None  # type: ignore[no-untyped-call]
    return tasks_v2.CloudTasksClient(
        transport="rest", credentials=credentials, client_options={"api_endpoint": settings.tasks_endpoint}
    )


class CloudTasksEnqueuer:
    """Hands steps to Cloud Tasks through :func:`tasks_client`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = tasks_client(self._settings)
        return self._client

    def build_task(
        self,
        task_id: str,
        step: str,
        generation: int,
        at: datetime | None = None,
        suffix: str = "",
        priority: str = "normal",
    ) -> dict[str, Any]:
        s = self._settings
        body = step_body(task_id, step, generation)
        request: dict[str, Any] = {
            "http_method": "POST",
            "url": s.step_url,
            "headers": {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(body, s.step_signing_secret)},
            "body": body,
        }
        if s.oidc_service_account:
            request["oidc_token"] = {
                "service_account_email": s.oidc_service_account,
                "audience": s.oidc_audience or s.step_url,
            }
        task: dict[str, Any] = {
            "name": f"{s.queue_path_for(priority)}/tasks/{task_name(task_id, step, generation, suffix)}",
            "http_request": request,
            # Cloud Tasks' longest deadline: a long step is not redelivered while it still runs.
            "dispatch_deadline": {"seconds": DISPATCH_DEADLINE_SECONDS},
        }
        if at is not None:
            task["schedule_time"] = at
        return task

    def enqueue_step(self, task_id: str, step: str, generation: int, priority: str = "normal") -> None:
        # Conflict, not AlreadyExists: over REST the client maps errors by HTTP status, and Cloud
        # Tasks answers a duplicate name 409 (ALREADY_EXISTS), which api_core raises as Conflict.
        from google.api_core.exceptions import Conflict

        try:
            self._get_client().create_task(
                parent=self._settings.queue_path_for(priority),
                task=self.build_task(task_id, step, generation, priority=priority),
                timeout=10,
            )
        except Conflict:
            logger.info("step already enqueued", extra={"fields": {"task_id": task_id, "step": step}})

    def schedule_step(
        self, task_id: str, step: str, generation: int, *, at: datetime, suffix: str, priority: str = "normal"
    ) -> None:
        from google.api_core.exceptions import Conflict  # AlreadyExists over gRPC is a Conflict too

        try:
            self._get_client().create_task(
                parent=self._settings.queue_path_for(priority),
                task=self.build_task(task_id, step, generation, at=at, suffix=suffix, priority=priority),
                timeout=10,
            )
        except Conflict:
            fields = {"task_id": task_id, "step": step, "suffix": suffix}
            logger.info("step already scheduled", extra={"fields": fields})


def hand_over(enqueuer: Enqueuer, task_id: str, step: str, generation: int, priority: str = "normal") -> bool:
    """Enqueue after commit; a failure is logged and left to the reaper, never lost."""
    try:
        enqueuer.enqueue_step(task_id, step, generation, priority)
        return True
    except Exception:
        logger.exception("enqueue failed; the scheduler tick will retry", extra={"fields": {"task_id": task_id}})
        return False


def schedule(
    enqueuer: Enqueuer, task_id: str, step: str, generation: int, at: datetime, suffix: str, priority: str = "normal"
) -> bool:
    """Schedule a later delivery after commit; a failure is logged and left to the reaper, never lost."""
    try:
        enqueuer.schedule_step(task_id, step, generation, at=at, suffix=suffix, priority=priority)
        return True
    except Exception:
        logger.exception("scheduling failed; the scheduler tick will retry", extra={"fields": {"task_id": task_id}})
        return False
