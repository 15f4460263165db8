"""The repository work of the pipeline, each operation create-if-absent.

Nothing here knows the pipeline: it raises ``NameTaken``/``GitHubRefused`` and the provider maps
them to step outcomes. Markers make a redelivery adopt what an earlier attempt made:
- a repository is this task's when its description carries ``repo_marker(task_id)``;
- the customization commit carries a ``Planter-Task:`` trailer;
- each issue carries a hidden HTML comment with the task id and its index, and the label.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from common.github.client import GitHubClient, GitHubRefused

ISSUE_LABEL = "planter"
MAX_FILE_BYTES = 32 * 1024  # template files the AI sees; bigger ones (and binaries) stay as they are
MAX_FILES = 40


class NameTaken(Exception):
    """The repository name belongs to a repository that is not this task's."""


def repo_marker(task_id: str) -> str:
    return f"[planter:{task_id}]"


def commit_trailer(task_id: str) -> str:
    return f"Planter-Task: {task_id}"


def issue_marker(task_id: str, index: int, planned: int) -> str:
    return f"<!-- planter:task={task_id} issue={index}/{planned} -->"


_ISSUE_MARKER = re.compile(r"<!-- planter:task=([0-9a-f-]+) issue=(\d+)/(\d+) -->")


def planned_of(body: str) -> int | None:
    """How many issues the plan that opened this one had."""
    match = _ISSUE_MARKER.search(body)
    return int(match.group(3)) if match else None


@dataclass(frozen=True)
class Repo:
    owner: str
    name: str
    html_url: str
    clone_url: str
    private: bool
    adopted: bool

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _repo(body: dict[str, Any], adopted: bool) -> Repo:
    return Repo(
        owner=body["owner"]["login"],
        name=body["name"],
        html_url=body["html_url"],
        clone_url=body["clone_url"],
        private=bool(body["private"]),
        adopted=adopted,
    )


def check_owner(gh: GitHubClient, owner: str) -> dict[str, Any]:
    """The organization, or GitHubRefused(404) when it does not exist or cannot be seen."""
    org: dict[str, Any] = gh.request("GET", "/orgs/{org}", org=owner)
    return org


def installation(gh: GitHubClient, owner: str) -> dict[str, Any] | None:
    """Planter's App installation on ``owner``, or None when it is not installed."""
    try:
        found: dict[str, Any] = gh.request("GET", "/orgs/{org}/installation", org=owner)
    except GitHubRefused as error:
        if error.status == 404:
            return None
        raise
    return found


def generate(
    gh: GitHubClient, template: str, owner: str, name: str, description: str, private: bool, task_id: str
) -> Repo:
    """Create ``owner/name`` from ``template``, or adopt it if an earlier attempt of this task made it."""
    t_owner, t_repo = template.split("/", 1)
    body = {"owner": owner, "name": name, "description": description, "private": private, "include_all_branches": False}
    try:
        made = gh.request("POST", "/repos/{owner}/{repo}/generate", json=body, owner=t_owner, repo=t_repo)
        return _repo(made, adopted=False)
    except GitHubRefused as error:
        if not (error.status == 422 and error.mentions("already exists")):
            raise
    existing = gh.request("GET", "/repos/{owner}/{repo}", owner=owner, repo=name)
    if repo_marker(task_id) in (existing.get("description") or ""):
        return _repo(existing, adopted=True)
    raise NameTaken(f"{owner}/{name}")


def head(gh: GitHubClient, owner: str, repo: str) -> tuple[str, str, str]:
    """(commit sha, tree sha, message) of main. A 409 "empty" right after creation is GitHubRefused(409)."""
    ref = gh.request("GET", "/repos/{owner}/{repo}/git/ref/heads/main", owner=owner, repo=repo)
    sha = ref["object"]["sha"]
    commit = gh.request("GET", "/repos/{owner}/{repo}/git/commits/{sha}", owner=owner, repo=repo, sha=sha)
    return sha, commit["tree"]["sha"], commit["message"]


def text_files(gh: GitHubClient, owner: str, repo: str, tree: str) -> dict[str, str]:
    """The template's small text files, path → content (what the AI is shown)."""
    listing = gh.request(
        "GET", "/repos/{owner}/{repo}/git/trees/{sha}", params={"recursive": "1"}, owner=owner, repo=repo, sha=tree
    )
    files: dict[str, str] = {}
    for entry in listing["tree"]:
        if entry["type"] != "blob" or int(entry.get("size") or 0) > MAX_FILE_BYTES or len(files) >= MAX_FILES:
            continue
        blob = gh.request("GET", "/repos/{owner}/{repo}/git/blobs/{sha}", owner=owner, repo=repo, sha=entry["sha"])
        try:
            files[entry["path"]] = base64.b64decode(blob["content"]).decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files


def read_text(gh: GitHubClient, owner: str, repo: str, tree: str, path: str) -> str | None:
    """One top-level file of ``tree`` (the README the issues are planned from), or None."""
    listing = gh.request("GET", "/repos/{owner}/{repo}/git/trees/{sha}", owner=owner, repo=repo, sha=tree)
    for entry in listing["tree"]:
        if entry["path"] == path and entry["type"] == "blob":
            blob = gh.request("GET", "/repos/{owner}/{repo}/git/blobs/{sha}", owner=owner, repo=repo, sha=entry["sha"])
            return base64.b64decode(blob["content"]).decode("utf-8", errors="replace")
    return None


def commit_files(
    gh: GitHubClient, owner: str, repo: str, files: dict[str, str], message: str, base: tuple[str, str]
) -> str | None:
    """One commit writing ``files`` on top of ``base`` (commit, tree); None when nothing changes."""
    parent, base_tree = base
    entries = []
    for path, content in sorted(files.items()):
        blob = gh.request(
            "POST",
            "/repos/{owner}/{repo}/git/blobs",
            json={"content": content, "encoding": "utf-8"},
            owner=owner,
            repo=repo,
        )
        entries.append({"path": path, "mode": "100644", "type": "blob", "sha": blob["sha"]})
    tree = gh.request(
        "POST",
        "/repos/{owner}/{repo}/git/trees",
        json={"base_tree": base_tree, "tree": entries},
        owner=owner,
        repo=repo,
    )
    if tree["sha"] == base_tree:
        return None
    commit = gh.request(
        "POST",
        "/repos/{owner}/{repo}/git/commits",
        json={"message": message, "tree": tree["sha"], "parents": [parent]},
        owner=owner,
        repo=repo,
    )
    # force: false: if main moved meanwhile, GitHub refuses (422) instead of losing someone's work.
    gh.request(
        "PATCH",
        "/repos/{owner}/{repo}/git/refs/heads/main",
        json={"sha": commit["sha"], "force": False},
        owner=owner,
        repo=repo,
    )
    sha: str = commit["sha"]
    return sha


def marked_issues(gh: GitHubClient, owner: str, repo: str, task_id: str) -> dict[int, dict[str, Any]]:
    """This task's issues already opened, by their index in the plan."""
    found: dict[int, dict[str, Any]] = {}
    page = 1
    while True:
        batch = gh.request(
            "GET",
            "/repos/{owner}/{repo}/issues",
            params={"labels": ISSUE_LABEL, "state": "all", "per_page": 100, "page": page},
            owner=owner,
            repo=repo,
        )
        for item in batch:
            match = _ISSUE_MARKER.search(item.get("body") or "")
            if match and match.group(1) == task_id:
                found.setdefault(int(match.group(2)), item)
        if len(batch) < 100:
            return found
        page += 1


def open_issue(gh: GitHubClient, owner: str, repo: str, title: str, body: str, labels: list[str]) -> dict[str, Any]:
    made: dict[str, Any] = gh.request(
        "POST",
        "/repos/{owner}/{repo}/issues",
        json={"title": title, "body": body, "labels": labels},
        owner=owner,
        repo=repo,
    )
    return made


def issue_titles(gh: GitHubClient, owner: str, repo: str) -> list[str]:
    """The titles of the repository's latest 100 issues (so new ones are not the same again)."""
    batch = gh.request(
        "GET", "/repos/{owner}/{repo}/issues", params={"state": "all", "per_page": 100}, owner=owner, repo=repo
    )
    return [str(item.get("title") or "") for item in batch]


def archive(gh: GitHubClient, owner: str, repo: str) -> str:
    """Archive the repository, create-if-absent in reverse: "archived", "already_archived" or "absent".

    GitHub refuses every write to an archived repository with 403 "Repository was archived so is
    read-only", so the state is read first and that refusal (a race with another archiver) is success.
    """
    try:
        found = gh.request("GET", "/repos/{owner}/{repo}", owner=owner, repo=repo)
        if found.get("archived"):
            return "already_archived"
        gh.request("PATCH", "/repos/{owner}/{repo}", json={"archived": True}, owner=owner, repo=repo)
    except GitHubRefused as error:
        if error.status == 404:
            return "absent"
        if error.status == 403 and error.mentions("archived"):
            return "already_archived"
        raise
    return "archived"
