"""docs/API.md is the reference a user of the API reads: every route the functions serve is in it."""

from __future__ import annotations

import pathlib
import re

from functions.routes import ROUTES

API_DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "API.md"
# The page's assets are fingerprinted; the document names their pattern, not each file.
ASSET = re.compile(r"^/assets/[^/]+$")


def test_every_route_of_the_table_is_documented() -> None:
    doc = API_DOC.read_text(encoding="utf-8")
    missing = [f"{r.method} {r.path}" for r in ROUTES if not ASSET.match(r.path) and r.path not in doc]
    assert missing == [], f"routes served but not in docs/API.md: {missing}"


def test_the_asset_pattern_is_documented() -> None:
    assert "/assets/<name>" in API_DOC.read_text(encoding="utf-8")
    assert any(ASSET.match(r.path) for r in ROUTES)


def test_nothing_links_outside_the_repository() -> None:
    docs = [API_DOC, *API_DOC.parent.glob("*.md"), API_DOC.parents[1] / "README.md"]
    for path in docs:
        assert "shared/design" not in path.read_text(encoding="utf-8"), path
