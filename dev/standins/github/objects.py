"""GitHub's JSON shapes for the objects the stand-in serves (every field GitHub marks required).

A test validates these against githubkit's pydantic models of GitHub's published OpenAPI
description, so a drift from the real API fails the suite.
"""

from __future__ import annotations

import hashlib
from typing import Any

EPOCH = "2026-01-01T00:00:00Z"


def node_id(kind: str, key: str) -> str:
    return f"{kind}_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def numeric_id(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def account(api: str, web: str, login: str, kind: str = "Organization") -> dict[str, Any]:
    base = f"{api}/users/{login}"
    return {
        "login": login,
        "id": numeric_id(login),
        "node_id": node_id("O", login),
        "avatar_url": f"{web}/{login}.png",
        "gravatar_id": "",
        "url": base,
        "html_url": f"{web}/{login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": kind,
        "site_admin": False,
    }


def organization(api: str, web: str, login: str) -> dict[str, Any]:
    base = f"{api}/orgs/{login}"
    return {
        "login": login,
        "id": numeric_id(login),
        "node_id": node_id("O", login),
        "url": base,
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events",
        "hooks_url": f"{base}/hooks",
        "issues_url": f"{base}/issues",
        "members_url": f"{base}/members{{/member}}",
        "public_members_url": f"{base}/public_members{{/member}}",
        "avatar_url": f"{web}/{login}.png",
        "description": None,
        "has_organization_projects": True,
        "has_repository_projects": True,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "html_url": f"{web}/{login}",
        "type": "Organization",
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "archived_at": None,
    }


def installation(api: str, web: str, login: str, installation_id: int) -> dict[str, Any]:
    return {
        "id": installation_id,
        "account": account(api, web, login),
        "repository_selection": "all",
        "access_tokens_url": f"{api}/app/installations/{installation_id}/access_tokens",
        "repositories_url": f"{api}/installation/repositories",
        "html_url": f"{web}/organizations/{login}/settings/installations/{installation_id}",
        "app_id": 1,
        "target_id": numeric_id(login),
        "target_type": "Organization",
        "permissions": {"administration": "write", "contents": "write", "issues": "write", "metadata": "read"},
        "events": [],
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "single_file_name": None,
        "app_slug": "planter",
        "suspended_by": None,
        "suspended_at": None,
    }


_REPO_URL_FIELDS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
    "hooks_url": "/hooks",
}


def repository(api: str, web: str, meta: dict[str, Any], open_issues: int) -> dict[str, Any]:
    owner, name = meta["owner"], meta["name"]
    full = f"{owner}/{name}"
    base = f"{api}/repos/{full}"
    body: dict[str, Any] = {
        "id": numeric_id(full),
        "node_id": node_id("R", full),
        "name": name,
        "full_name": full,
        "owner": account(api, web, owner),
        "private": meta["private"],
        "html_url": f"{web}/{full}",
        "description": meta.get("description"),
        "fork": False,
        "url": base,
        "git_url": f"{web}/{full}.git",
        "ssh_url": f"git@localhost:{full}.git",
        "clone_url": f"{web}/{full}.git",
        "mirror_url": None,
        "svn_url": f"{web}/{full}",
        "homepage": None,
        "language": None,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": 0,
        "default_branch": "main",
        "open_issues_count": open_issues,
        "is_template": meta.get("is_template", False),
        "has_issues": True,
        "has_projects": True,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "archived": bool(meta.get("archived")),
        "disabled": False,
        "visibility": "private" if meta["private"] else "public",
        "pushed_at": meta["created_at"],
        "created_at": meta["created_at"],
        "updated_at": meta["created_at"],
        "subscribers_count": 0,
        "network_count": 0,
        "license": None,
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
    }
    body.update({key: base + suffix for key, suffix in _REPO_URL_FIELDS.items()})
    if meta.get("template"):
        body["template_repository"] = None
    return body


def git_ref(api: str, full: str, ref: str, sha: str) -> dict[str, Any]:
    return {
        "ref": f"refs/{ref}",
        "node_id": node_id("REF", f"{full}/{ref}"),
        "url": f"{api}/repos/{full}/git/refs/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{api}/repos/{full}/git/commits/{sha}"},
    }


def git_commit(
    api: str, web: str, full: str, sha: str, tree: str, parents: list[str], message: str, date: str
) -> dict[str, Any]:
    person = {"name": "planter-bot", "email": "planter-bot@users.noreply.local", "date": date}
    return {
        "sha": sha,
        "node_id": node_id("C", sha),
        "url": f"{api}/repos/{full}/git/commits/{sha}",
        "html_url": f"{web}/{full}/commit/{sha}",
        "author": person,
        "committer": person,
        "message": message,
        "tree": {"sha": tree, "url": f"{api}/repos/{full}/git/trees/{tree}"},
        "parents": [
            {"sha": p, "url": f"{api}/repos/{full}/git/commits/{p}", "html_url": f"{web}/{full}/commit/{p}"}
            for p in parents
        ],
        "verification": {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        },
    }


def issue(api: str, web: str, full: str, number: int, data: dict[str, Any]) -> dict[str, Any]:
    base = f"{api}/repos/{full}/issues/{number}"
    return {
        "id": numeric_id(f"{full}#{number}"),
        "node_id": node_id("I", f"{full}#{number}"),
        "url": base,
        "repository_url": f"{api}/repos/{full}",
        "labels_url": f"{base}/labels{{/name}}",
        "comments_url": f"{base}/comments",
        "events_url": f"{base}/events",
        "html_url": f"{web}/{full}/issues/{number}",
        "number": number,
        "state": "open",
        "title": data["title"],
        "body": data.get("body"),
        "user": account(api, web, "planter[bot]", "Bot") | {"login": "planter[bot]"},
        "labels": [
            {
                "id": numeric_id(f"{full}:{label}"),
                "node_id": node_id("L", f"{full}:{label}"),
                "url": f"{api}/repos/{full}/labels/{label}",
                "name": label,
                "description": None,
                "color": "ededed",
                "default": False,
            }
            for label in data.get("labels", [])
        ],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": 0,
        "closed_at": None,
        "created_at": data["created_at"],
        "updated_at": data["created_at"],
        "author_association": "NONE",
    }
