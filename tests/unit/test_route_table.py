"""RouteTable finds what an in-order scan of the routes finds, literal paths by a dict lookup."""

from __future__ import annotations

from common.http import Call, Reply, Route, RouteTable
from functions.routes import ROUTES


def answer(call: Call) -> Reply:
    return Reply(None, 204)


def route(method: str, path: str) -> Route:
    return Route(method=method, path=path, function="f", handler=answer, summary="", auth="none")


def test_an_earlier_pattern_wins_over_a_later_literal_path_as_in_the_scan() -> None:
    by_id, types, listing = route("GET", "/things/{thing_id}"), route("GET", "/things/types"), route("GET", "/things")
    table = RouteTable([by_id, types, listing])
    assert table.find("GET", "/things/types") == (by_id, {"thing_id": "types"})
    assert table.find("GET", "/things") == (listing, {})
    assert table.find("POST", "/things") is None
    assert table.find("GET", "/things/x/y") is None


def test_path_parameters_are_a_fresh_dict_for_every_request() -> None:
    table = RouteTable([route("GET", "/things/{thing_id}")])
    found = table.find("GET", "/things/1")
    assert found is not None
    found[1]["thing_id"] = "changed"
    assert table.find("GET", "/things/1") == (found[0], {"thing_id": "1"})


def test_every_route_of_the_api_is_found_where_the_scan_finds_it() -> None:
    table = RouteTable(ROUTES)
    for r in ROUTES:
        path = r.path.replace("{", "").replace("}", "")  # a parameter's own name as its value
        scanned = next((x, m.groupdict()) for x in ROUTES if x.method == r.method and (m := x.pattern.match(path)))
        assert table.find(r.method, path) == scanned
