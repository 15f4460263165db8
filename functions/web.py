"""GET / and its assets: Planter's dashboard page, served by its own function (``web``).

The page is plain files kept in ``functions/page/`` (no build step, nothing fetched at run time).
Each asset is served under a fingerprinted name (``/assets/app.<hash>.js``) that index.html is
rewritten to use when this module loads, so assets are cached for a year and a new deploy is
picked up at once; index.html itself is revalidated (ETag) on every load. A strict
Content-Security-Policy allows only this origin's scripts and styles: the page has no inline
script or style, and renders data with textContent only.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
from dataclasses import dataclass

from common.http import Call, Handler, Reply, Route
from common.openapi import WEB_FUNCTION, web_media_type

PAGE_DIR = pathlib.Path(__file__).parent / "page"
# Loaded in this order by index.html; every file of the page is listed here (a test checks it).
ASSET_FILES = ("style.css", "favicon.svg", "api.js", "charts.js", "tasks.js", "panels.js", "app.js")
FUNCTION = WEB_FUNCTION

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StaticFile:
    url_path: str
    body: bytes
    content_type: str
    etag: str
    cache_control: str


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _content_type(name: str) -> str:
    media = web_media_type(name)
    return f"{media}; charset=utf-8" if media.startswith("text/") else media


def fingerprinted(name: str, body: bytes) -> str:
    stem, dot, suffix = name.rpartition(".")
    return f"/assets/{stem}.{hashlib.sha256(body).hexdigest()[:12]}{dot}{suffix}"


def load_page(page_dir: pathlib.Path = PAGE_DIR) -> tuple[StaticFile, tuple[StaticFile, ...]]:
    """index.html with its asset references rewritten to fingerprinted names, and the assets."""
    assets: list[StaticFile] = []
    html = (page_dir / "index.html").read_text(encoding="utf-8")
    for name in ASSET_FILES:
        body = (page_dir / name).read_bytes()
        url_path = fingerprinted(name, body)
        reference = f'"/assets/{name}"'
        if reference not in html:
            raise RuntimeError(f"index.html does not reference {reference}")
        html = html.replace(reference, f'"{url_path}"')
        assets.append(StaticFile(url_path, body, _content_type(name), _etag(body), _IMMUTABLE))
    index_body = html.encode("utf-8")
    index = StaticFile("/", index_body, "text/html; charset=utf-8", _etag(index_body), "no-cache")
    return index, tuple(assets)


def _serve(file: StaticFile, call: Call) -> Reply:
    headers = {"ETag": file.etag, "Cache-Control": file.cache_control, **_SECURITY_HEADERS}
    candidates = {t.strip().removeprefix("W/") for t in call.request.headers.get("If-None-Match", "").split(",")}
    if file.etag in candidates or "*" in candidates:
        return Reply(None, 304, headers)
    return Reply(file.body, headers={**headers, "Content-Type": file.content_type})


def _handler(file: StaticFile, name: str) -> Handler:
    def handler(call: Call) -> Reply:
        return _serve(file, call)

    # The route's operationId in the OpenAPI document and the gateway config: one per file.
    handler.__name__ = name
    return handler


def page_routes(page_dir: pathlib.Path = PAGE_DIR) -> tuple[Route, ...]:
    """One route for the page and one per fingerprinted asset, all served by the ``web`` function."""
    index, assets = load_page(page_dir)
    routes = [
        Route(
            method="GET",
            path="/",
            function=FUNCTION,
            handler=_handler(index, "web_page"),
            summary="The dashboard page (HTML for browsers; not an API operation)",
            auth="none",
            errors=(304,),
        )
    ]
    for file in assets:
        slug = "_".join(re.findall(r"[a-z0-9]+", file.url_path.removeprefix("/assets/").rsplit(".", 2)[0]))
        routes.append(
            Route(
                method="GET",
                path=file.url_path,
                function=FUNCTION,
                handler=_handler(file, f"web_asset_{slug}"),
                summary="A static asset of the dashboard page (fingerprinted, immutable; not an API operation)",
                auth="none",
                errors=(304,),
            )
        )
    return tuple(routes)
