"""Real bare git repositories on disk, driven through the git command line.

The REST git data API (blobs, trees, commits, refs) maps one-to-one onto git plumbing, so the
stand-in's objects are git's own: a commit made through the API is what `git clone` fetches.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass

_IDENTITY = {
    "GIT_AUTHOR_NAME": "planter-bot",
    "GIT_AUTHOR_EMAIL": "planter-bot@users.noreply.local",
    "GIT_COMMITTER_NAME": "planter-bot",
    "GIT_COMMITTER_EMAIL": "planter-bot@users.noreply.local",
}


class GitError(Exception):
    """A git command refused the operation (unknown object, not a fast-forward, ...)."""


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    type: str
    sha: str
    size: int | None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author_date: str


class GitStore:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, owner: str, name: str) -> pathlib.Path:
        return self.root / owner / f"{name}.git"

    def exists(self, owner: str, name: str) -> bool:
        return (self.path(owner, name) / "HEAD").exists()

    def _git(self, repo: pathlib.Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=repo,
            input=data,
            capture_output=True,
            env={**os.environ, **_IDENTITY, **(env or {})},
            check=False,
        )
        if proc.returncode != 0:
            raise GitError(proc.stderr.decode(errors="replace").strip())
        return proc.stdout.decode(errors="replace")

    def init(self, owner: str, name: str, branch: str = "main") -> pathlib.Path:
        repo = self.path(owner, name)
        repo.mkdir(parents=True, exist_ok=True)
        self._git(repo, "init", "--bare", "--quiet", f"--initial-branch={branch}")
        # Served read-only over smart HTTP; `git clone` needs nothing else.
        (repo / "git-daemon-export-ok").touch()
        return repo

    def seed_files(self, owner: str, name: str, files: dict[str, str], message: str) -> str:
        """A first commit holding ``files`` (a seeded template)."""
        tree = self.make_tree(
            owner, name, None, [(p, "100644", self.write_blob(owner, name, c.encode())) for p, c in files.items()]
        )
        sha = self.commit(owner, name, message, tree, [])
        self.set_ref(owner, name, "heads/main", sha, force=True)
        return sha

    def generate_from(self, template: tuple[str, str], owner: str, name: str) -> str:
        """A new repository whose single commit holds the template's tree (GitHub's "generate")."""
        source = self.path(*template)
        repo = self.init(owner, name)
        self._git(repo, "fetch", "--quiet", str(source), "refs/heads/main:refs/templates/main")
        tree = self._git(repo, "rev-parse", "refs/templates/main^{tree}").strip()
        self._git(repo, "update-ref", "-d", "refs/templates/main")
        sha = self.commit(owner, name, "Initial commit", tree, [])
        self.set_ref(owner, name, "heads/main", sha, force=True)
        return sha

    def write_blob(self, owner: str, name: str, content: bytes) -> str:
        return self._git(self.path(owner, name), "hash-object", "-w", "--stdin", data=content).strip()

    def read_blob(self, owner: str, name: str, sha: str) -> bytes:
        proc = subprocess.run(
            ["git", "cat-file", "blob", sha], cwd=self.path(owner, name), capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise GitError(f"no blob {sha}")
        return proc.stdout

    def make_tree(
        self, owner: str, name: str, base_tree: str | None, entries: list[tuple[str, str, str | None]]
    ) -> str:
        """``base_tree`` with ``entries`` (path, mode, blob sha; None deletes) applied: a new tree sha."""
        repo = self.path(owner, name)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(pathlib.Path(tmp) / "index")}
            if base_tree:
                self._git(repo, "read-tree", base_tree, env=env)
            for path, mode, sha in entries:
                if sha is None:
                    self._git(repo, "update-index", "--force-remove", "--", path, env=env)
                else:
                    self._git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}", env=env)
            return self._git(repo, "write-tree", env=env).strip()

    def commit(self, owner: str, name: str, message: str, tree: str, parents: list[str]) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._git(self.path(owner, name), *args, data=message.encode()).strip()

    def read_commit(self, owner: str, name: str, sha: str) -> CommitInfo:
        repo = self.path(owner, name)
        if self._git(repo, "cat-file", "-t", sha).strip() != "commit":
            raise GitError(f"{sha} is not a commit")
        out = self._git(repo, "show", "-s", "--format=%H%n%T%n%P%n%aI%n%B", sha)
        sha_, tree, parents, date, *message = out.split("\n")
        return CommitInfo(sha_, tree, parents.split(), "\n".join(message).rstrip("\n"), date)

    def show(self, owner: str, name: str, sha: str) -> str:
        """A commit as `git show --stat --patch` prints it (the web page of a commit)."""
        repo = self.path(owner, name)
        if self._git(repo, "cat-file", "-t", sha).strip() != "commit":
            raise GitError(f"{sha} is not a commit")
        return self._git(repo, "show", "--stat", "--patch", "--format=fuller", sha)

    def read_tree(self, owner: str, name: str, sha: str, recursive: bool) -> list[TreeEntry]:
        args = ["ls-tree", "--long", "-z"] + (["-r", "-t"] if recursive else []) + [sha]
        entries = []
        for line in self._git(self.path(owner, name), *args).split("\0"):
            if not line:
                continue
            meta, path = line.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entries.append(TreeEntry(path, mode, kind, obj, None if size == "-" else int(size)))
        return entries

    def get_ref(self, owner: str, name: str, ref: str) -> str | None:
        try:
            return self._git(self.path(owner, name), "rev-parse", "--verify", "--quiet", f"refs/{ref}").strip() or None
        except GitError:
            return None

    def set_ref(self, owner: str, name: str, ref: str, sha: str, force: bool) -> None:
        repo = self.path(owner, name)
        current = self.get_ref(owner, name, ref)
        if current and not force:
            try:
                self._git(repo, "merge-base", "--is-ancestor", current, sha)
            except GitError as exc:
                raise GitError("Update is not a fast forward") from exc
        self._git(repo, "update-ref", f"refs/{ref}", sha)
