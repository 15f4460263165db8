"""`git clone` over HTTP: git's own CGI program (git http-backend, shipped with git) behind WSGI."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterable
from typing import Any


def serve_git(project_root: pathlib.Path, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    cgi_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": environ["REQUEST_METHOD"],
        "PATH_INFO": environ.get("PATH_INFO", ""),
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
        "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
    }
    if environ.get("HTTP_CONTENT_ENCODING"):
        cgi_env["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
    if environ.get("HTTP_GIT_PROTOCOL"):
        cgi_env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
    proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=cgi_env, check=False)
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = proc.stdout.partition(b"\n\n")
    status = "200 OK"
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = value.strip()
        elif name:
            headers.append((name.strip(), value.strip()))
    if proc.returncode != 0 and not proc.stdout:
        status, headers, payload = "404 Not Found", [("Content-Type", "text/plain")], b"Repository not found\n"
    start_response(status, headers)
    return [payload]
