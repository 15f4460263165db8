"""The stand-in's web pages: what a planted project's links (repo_url, issue and commit URLs) show.

On github.com those URLs are web pages; here they are plain HTML pages made from the same git
repositories and issues the API serves, so the dashboard's links and the task's `result` URLs
open locally: an organization's repositories, a repository (README, files, commits, issues), its
issues, one issue, one commit. Like `git clone` of the stand-in they need no sign-in (a local
development convenience: github.com would ask a private repository's visitor to sign in).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from werkzeug.wrappers import Response

from dev.standins.github.gitstore import GitError, GitStore
from dev.standins.github.state import State

_PAGE = re.compile(
    r"^/(?P<owner>[A-Za-z0-9_.-]+)(?:/(?P<repo>[A-Za-z0-9_.-]+)"
    r"(?:/(?:(?P<issues>issues)(?:/(?P<number>\d+))?|commit/(?P<sha>[0-9a-f]{4,40})))?)?/?$"
)
_NOT_PAGES = frozenset({"repos", "orgs", "app", "_faults"})
_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#1f2328}"
    "pre{background:#f6f8fa;padding:1em;overflow:auto;white-space:pre-wrap}"
    ".label{background:#ddf4ff;border-radius:1em;padding:0 .6em;margin-left:.4em;font-size:12px}"
    "code{background:#f6f8fa;padding:.1em .3em}"
)


def page(path: str, state: State, git: GitStore, base_url: str) -> Response | None:
    """The web page at ``path``, or None when the path is not one (the API answers it)."""
    found = _PAGE.match(path)
    if not found or found["owner"] in _NOT_PAGES:
        return None
    owner, repo = found["owner"], found["repo"]
    if repo is None:
        return _organization(owner, state)
    meta = state.repo(owner, repo)
    if meta is None or not git.exists(meta["owner"], meta["name"]):
        return _html(404, "Not Found", "<p>No such repository.</p>")
    owner, repo = meta["owner"], meta["name"]
    full = f"{owner}/{repo}"
    if found["sha"]:
        return _commit(full, git, found["sha"])
    if found["number"]:
        return _issue(full, state, int(found["number"]))
    if found["issues"]:
        return _html(200, f"Issues · {full}", _issue_list(full, state))
    return _repository(full, meta.get("description"), meta.get("archived"), state, git, base_url)


def _organization(owner: str, state: State) -> Response:
    repos = sorted(m["name"] for m in state.data["repos"].values() if m["owner"].lower() == owner.lower())
    if state.org(owner) is None and not repos:
        return _html(404, "Not Found", "<p>No such organization.</p>")
    items = "".join(f'<li><a href="/{_e(owner)}/{_e(r)}">{_e(r)}</a></li>' for r in repos)
    return _html(200, owner, f"<h2>Repositories</h2><ul>{items or '<li>none yet</li>'}</ul>")


def _repository(
    full: str, description: str | None, archived: object, state: State, git: GitStore, base_url: str
) -> Response:
    owner, repo = full.split("/")
    head = git.get_ref(owner, repo, "heads/main")
    parts = [f"<p>{_e(description)}</p>" if description else ""]
    if archived:
        parts.append("<p><strong>This repository is archived.</strong> It is read-only.</p>")
    parts.append(f"<p>Clone: <code>git clone {_e(base_url)}/{_e(full)}.git</code></p>")
    if head is None:
        return _html(200, full, "".join(parts) + "<p>This repository is empty.</p>")
    commit = git.read_commit(owner, repo, head)
    files = [e for e in git.read_tree(owner, repo, commit.tree, recursive=True) if e.type == "blob"]
    readme = next((e for e in files if e.path.lower() == "readme.md"), None)
    parts.append("<h2>Files</h2><ul>" + "".join(f"<li>{_e(e.path)}</li>" for e in files) + "</ul>")
    parts.append("<h2>Commits</h2><ul>" + "".join(_commit_items(full, git, head)) + "</ul>")
    parts.append(f'<h2><a href="/{_e(full)}/issues">Issues</a></h2>' + _issue_list(full, state))
    if readme is not None:
        text = git.read_blob(owner, repo, readme.sha).decode(errors="replace")
        parts.append(f"<h2>README.md</h2><pre>{_e(text)}</pre>")
    return _html(200, full, "".join(parts))


def _commit_items(full: str, git: GitStore, head: str) -> Iterable[str]:
    owner, repo = full.split("/")
    sha: str | None = head
    while sha:
        commit = git.read_commit(owner, repo, sha)
        subject = commit.message.splitlines()[0] if commit.message else ""
        yield f'<li><a href="/{_e(full)}/commit/{sha}"><code>{sha[:7]}</code></a> {_e(subject)}</li>'
        sha = commit.parents[0] if commit.parents else None


def _issue_list(full: str, state: State) -> str:
    items = [
        f'<li><a href="/{_e(full)}/issues/{n}">#{n} {_e(issue["title"])}</a>{_labels(issue["labels"])}</li>'
        for n, issue in enumerate(state.issues(full), start=1)
    ]
    return "<ul>" + ("".join(items) or "<li>no issues</li>") + "</ul>"


def _issue(full: str, state: State, number: int) -> Response:
    issues = state.issues(full)
    if not 1 <= number <= len(issues):
        return _html(404, "Not Found", "<p>No such issue.</p>")
    issue = issues[number - 1]
    body = f"<p>{_labels(issue['labels'])} opened {_e(issue['created_at'])}</p><pre>{_e(issue['body'] or '')}</pre>"
    return _html(200, f"#{number} {issue['title']} · {full}", body)


def _commit(full: str, git: GitStore, sha: str) -> Response:
    owner, repo = full.split("/")
    try:
        shown = git.show(owner, repo, sha)
    except GitError:
        return _html(404, "Not Found", "<p>No such commit.</p>")
    return _html(200, f"Commit {sha[:7]} · {full}", f"<pre>{_e(shown)}</pre>")


def _labels(labels: list[str]) -> str:
    return "".join(f'<span class="label">{_e(label)}</span>' for label in labels)


def _e(text: object) -> str:
    return html.escape(str(text))


def _html(status: int, title: str, body: str) -> Response:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{body}"
        "<p><small>GitHub stand-in (local development)</small></p></body></html>"
    )
    return Response(document, status=status, content_type="text/html; charset=utf-8")
