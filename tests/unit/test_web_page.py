"""The dashboard page as the ``web`` function serves it: a strict CSP that the page's own files
respect (no inline script, style or handler), fingerprinted cacheable assets, ETag/304, nothing
fetched from elsewhere, data rendered as text; and its routes marked as a web page in /openapi.json.
The page's behaviour in a real browser: tests/e2e/test_dashboard_page.py."""

from __future__ import annotations

import hashlib
import html.parser
import re
from typing import Any

import pytest

from common.openapi import build_document
from functions import web
from functions.routes import ROUTES
from tests.unit import deploy_support as ds


@pytest.fixture
def client() -> Any:
    return ds.function_app("web", ds.secure_runtime()).test_client()  # no database: the page needs none


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def _page(client: Any) -> tuple[Any, _Tags]:
    response = client.get("/")
    parser = _Tags()
    parser.feed(response.get_data(as_text=True))
    return response, parser


def test_the_page_is_html_with_a_strict_content_security_policy(client: Any) -> None:
    response, _ = _page(client)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = {d.split()[0]: d.split()[1:] for d in response.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"  # revalidated on each load (ETag below)


def test_the_page_has_no_inline_script_style_or_handler_and_loads_only_its_own_assets(client: Any) -> None:
    _, parser = _page(client)
    assert parser.script_text == []
    references: list[str] = []
    for tag, attrs in parser.tags:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "script":
            assert attrs.get("src"), "every script is a file"
        references += [value for a in ("src", "href") if (value := attrs.get(a))]
    assert len(set(references)) == len(web.ASSET_FILES)
    for reference in references:
        assert reference.startswith("/assets/"), reference
        assert client.get(reference).status_code == 200, reference


def test_assets_are_fingerprinted_immutable_and_typed(client: Any) -> None:
    _, parser = _page(client)
    served = {ref for _, attrs in parser.tags if (ref := attrs.get("src") or attrs.get("href"))}
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in web.ASSET_FILES:
        body = (web.PAGE_DIR / name).read_bytes()
        stem, suffix = name.rsplit(".", 1)
        path = f"/assets/{stem}.{hashlib.sha256(body).hexdigest()[:12]}.{suffix}"
        assert path in served, name  # index.html refers to the current content's name
        response = client.get(path)
        assert response.get_data() == body
        assert response.mimetype == types["." + suffix]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert (again.status_code, again.get_data()) == (304, b"")
    # The dots of a fingerprinted name are literal: a look-alike path is not that asset.
    some = next(iter(served))
    assert client.get(some.replace(".", "x", 1)).status_code == 404


def test_the_page_answers_304_while_unchanged(client: Any) -> None:
    first = client.get("/")
    again = client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert (again.status_code, again.get_data()) == (304, b"")
    assert client.get("/", headers={"If-None-Match": '"other"'}).status_code == 200


def test_every_file_of_the_page_is_served_and_nothing_is_fetched_from_elsewhere() -> None:
    files = {p.name for p in web.PAGE_DIR.iterdir() if p.is_file()}
    assert files == {"index.html", *web.ASSET_FILES}
    for name in files:
        text = (web.PAGE_DIR / name).read_text(encoding="utf-8")
        # The one absolute URL allowed is the SVG namespace (a name, never fetched).
        urls = set(re.findall(r"\bhttps?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), (name, urls)


def test_the_scripts_render_data_as_text_never_as_html() -> None:
    for name in web.ASSET_FILES:
        if not name.endswith(".js"):
            continue
        text = (web.PAGE_DIR / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, (name, sink)


def test_openapi_marks_the_page_routes_as_a_web_page_not_api_operations() -> None:
    document = build_document(ROUTES)
    page_paths = {r.path for r in ROUTES if r.function == web.FUNCTION}
    assert "/" in page_paths and len(page_paths) == 1 + len(web.ASSET_FILES)
    for path, item in document["paths"].items():
        operation = item["get"] if "get" in item else next(iter(item.values()))
        if path in page_paths:
            assert operation["tags"] == ["web page"] and operation["x-planter-web-page"] is True
            assert "application/json" not in operation["responses"]["200"]["content"]
        else:
            assert "x-planter-web-page" not in operation
    assert any(tag["name"] == "web page" for tag in document["tags"])
