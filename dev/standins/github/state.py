"""What GitHub knows besides git objects: organizations, App installations, repositories, issues.

Kept in one JSON file next to the repositories, so a restarted `make dev` still knows them.
"""

from __future__ import annotations

import json
import pathlib
import threading
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, path: pathlib.Path) -> None:
        self._path = path
        self.lock = threading.RLock()
        empty: dict[str, Any] = {"orgs": {}, "repos": {}, "issues": {}}
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else empty

    def save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self._path)

    def add_org(self, login: str, installed: bool = True) -> None:
        with self.lock:
            known = self.data["orgs"].setdefault(login, {"installation_id": None})
            if installed and not known["installation_id"]:
                known["installation_id"] = 1000 + len(self.data["orgs"])
            if not installed:
                known["installation_id"] = None
            self.save()

    def org(self, login: str) -> dict[str, Any] | None:
        org: dict[str, Any] | None = self.data["orgs"].get(login.lower()) or self.data["orgs"].get(login)
        return org

    def repo(self, owner: str, name: str) -> dict[str, Any] | None:
        repo: dict[str, Any] | None = self.data["repos"].get(f"{owner}/{name}".lower())
        return repo

    def add_repo(self, owner: str, name: str, **meta: Any) -> dict[str, Any]:
        with self.lock:
            record = {"owner": owner, "name": name, "created_at": now_iso(), "private": True, **meta}
            self.data["repos"][f"{owner}/{name}".lower()] = record
            self.save()
            return record

    def update_repo(self, owner: str, name: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            record: dict[str, Any] = self.data["repos"][f"{owner}/{name}".lower()]
            if changes.get("archived") and not record.get("archived"):
                changes["archived_at"] = now_iso()
            record.update(changes)
            self.save()
            return record

    def issues(self, full: str) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = self.data["issues"].setdefault(full.lower(), [])
        return issues

    def add_issue(self, full: str, title: str, body: str | None, labels: list[str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            issues = self.issues(full)
            record = {"title": title, "body": body, "labels": labels, "created_at": now_iso()}
            issues.append(record)
            self.save()
            return len(issues), record
