"""The one place that knows Flask: routing, JSON in and out, problem+json, CORS, auth gates.

Every deployed function calls ``dispatch`` with its own name; it serves only the routes the
route table gives that function, so the local gateway and the API Gateway agree by construction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import flask
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import RequestEntityTooLarge

from common import auth, log
from common.db import is_disconnect
from common.errors import (
    BadRequest,
    DatabaseUnavailable,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlanterError,
    UnsupportedMediaType,
    ValidationFailed,
)
from common.stream_tokens import verify_stream_token

if TYPE_CHECKING:
    from common.runtime import Runtime
    from common.services.users import User

M = TypeVar("M", bound=BaseModel)
# "stream": a user's bearer token, or a short stream token as ?access_token= (EventSource cannot
# send headers); only the event routes use it, so a stream token is refused everywhere else.
AuthKind = Literal["user", "callback", "internal", "none", "stream"]
PROBLEM_TYPE_BASE = "https://planter.dev/problems/"
_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match"
_EXPOSED_HEADERS = "Location, ETag, Retry-After"
_SIGNATURE_ENVIRON = "HTTP_" + auth.SIGNATURE_HEADER.upper().replace("-", "_")  # how WSGI names the header
# GETs under these prefixes answer with an ETag over their body and 304 to a matching
# If-None-Match (conditional_reply), whoever writes the handler: new dashboard routes get it too.
CONDITIONAL_PREFIXES = ("/api/v1/dashboard/",)
# Top-level fields that say when a response was made, not what it says: left out of the ETag.
# (Insights: "cached" says where the same set came from, so a client holding it gets a 304.)
VOLATILE_FIELDS = frozenset({"timestamp", "cached"})

logger = log.get_logger("planter.http")


@dataclass(frozen=True)
class Route:
    """One public or internal operation: the single source of truth for routing and OpenAPI."""

    method: str
    path: str
    function: str  # the deployed Cloud Function that serves it (its name in main.py and cloudbuild.yaml)
    handler: Handler  # the Python callable that answers it
    summary: str
    auth: AuthKind
    status: int = 200
    request_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Literal parts matched literally (a fingerprinted asset's dots too); {name} is one segment.
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def conditional(self) -> bool:
        """Answered with an ETag, and 304 to a matching If-None-Match (conditional_reply)."""
        return self.method == "GET" and self.path.startswith(CONDITIONAL_PREFIXES)


@dataclass
class Call:
    """What a handler receives: the instance's runtime, the request, its path parameters and the
    verified caller."""

    rt: Runtime
    request: flask.Request
    params: dict[str, str]
    route: Route
    caller: User | None = None  # set by the router for routes with auth="user" or "stream"

    @property
    def user(self) -> User:
        """The verified user; only routes whose auth names a user have one (a handler asking
        elsewhere is a programming error, answered 500)."""
        if self.caller is None:
            raise LookupError(f"{self.route.path} is not a user route: its calls have no user")
        return self.caller

    def json(self, model: type[M]) -> M:
        return parse_json(self.request, model, self.rt.settings.max_body_bytes)

    def query(self, model: type[M]) -> M:
        return parse_query(self.request, model)

    def uuid_param(self, name: str) -> uuid.UUID:
        """A path id; a malformed one is answered like an unknown one (404)."""
        try:
            return uuid.UUID(self.params[name])
        except ValueError:
            raise NotFound(f"no {name.removesuffix('_id')} with that id") from None


@dataclass
class Reply:
    # A model (most routes), a JSON object built at the edge (healthz, the OpenAPI document, a
    # step delivery's outcome), a static file's bytes, an event stream, or no body (204, 304).
    body: ReplyBody
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventStream:
    """A ``text/event-stream`` body: the chunks are sent as they are produced (one server thread
    per open stream under functions-framework's gthread server)."""

    chunks: Iterator[str]


def if_none_match(request: flask.Request, tag: str) -> bool:
    """Whether the request's If-None-Match names ``tag``. Weak comparison (RFC 9110 13.1.2): a
    proxy that compresses the body sends the tag back as W/"..."."""
    candidates = [t.strip().removeprefix("W/") for t in request.environ.get("HTTP_IF_NONE_MATCH", "").split(",")]
    return tag in candidates or candidates == ["*"]


def conditional_reply(request: flask.Request, reply: Reply) -> Reply:
    """Add an ETag over the reply's figures (its JSON without VOLATILE_FIELDS) and answer 304 when
    the client already has them. Browsers revalidate every time (no-cache), so a dashboard that
    refreshes every few seconds gets 304s, without a body, until a figure changes. The body is
    serialised once here, and that text is what a 200 sends."""
    body = reply.body
    if reply.status != 200 or "ETag" in reply.headers or not isinstance(body, BaseModel | dict):
        return reply
    text = _json_text(body)
    if isinstance(body, BaseModel) and _declared_keys_only(type(body)):
        # Its JSON holds its fields in their declared order: the same figures give the same text.
        volatile = set(VOLATILE_FIELDS.intersection(type(body).model_fields))
        figures = body.model_dump_json(exclude=volatile) if volatile else text
    else:  # free-form keys (a dict read back from jsonb comes in another order): sorted
        data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        kept = {k: v for k, v in data.items() if k not in VOLATILE_FIELDS}
        figures = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    tag = f'"{hashlib.sha256(figures.encode()).hexdigest()[:32]}"'
    headers = {**reply.headers, "ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match(request, tag):
        return Reply(None, 304, headers)
    return Reply(JsonText(text), reply.status, headers)


@functools.cache
def _declared_keys_only(model: type[BaseModel]) -> bool:
    """Whether every object in the model's JSON is a model (nested ones included), never a dict
    or an Any, whose keys come in whatever order they were made."""
    return all(_declared_keys_in(field.annotation) for field in model.model_fields.values())


def _declared_keys_in(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _declared_keys_only(annotation)
    origin = typing.get_origin(annotation)
    container = origin or annotation
    if annotation is Any or (isinstance(container, type) and issubclass(container, Mapping)):
        return False
    if origin is Literal:
        return True
    return all(_declared_keys_in(arg) for arg in typing.get_args(annotation))


@dataclass(frozen=True)
class JsonText:
    """A JSON body already serialised (conditional_reply hashed it)."""

    text: str


def _json_text(body: BaseModel | dict[str, Any]) -> str:
    if isinstance(body, BaseModel):
        return body.model_dump_json()  # pydantic-core: a quarter of model_dump + json.dumps (BENCHMARKS.md)
    return json.dumps(body, separators=(",", ":"))


ReplyBody = BaseModel | dict[str, Any] | JsonText | bytes | EventStream | None
Handler = Callable[[Call], Reply]
UserResolver = Callable[["Runtime", auth.Identity], "User"]


def _field_errors(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors(include_url=False):
        name = ".".join(str(p) for p in item["loc"]) or "body"
        errors.setdefault(name, item["msg"])
    return errors


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (before reading it all)."""
    # One byte of slack: a chunked body (no Content-Length) is cut at max_content_length by the
    # stream rather than refused, so the extra byte is what tells an oversized one apart.
    request.max_content_length = limit + 1
    try:
        body: bytes | None = request.get_data(cache=True)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        # functions-framework reads the body once more after every request (read_request); with
        # the limit still set that read raises again and turns this 413 into an HTML 500. Without
        # it, that read would keep the whole declared body in memory: drain it here, unkept.
        request.max_content_length = None
        if body is None:
            while request.stream.read(64 * 1024):
                pass
        raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
    return body


def parse_json(request: flask.Request, model: type[M], limit: int) -> M:
    """Validate a JSON body against ``model``: 413, 415, 400 and 422 as API.md says."""
    raw = read_body(request, limit)
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError as error:  # not UTF-8, not JSON, NaN/Infinity, an integer over 4,300 digits
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    except RecursionError:  # nesting deep enough to exhaust the parser's stack, within the size limit
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object", errors={"body": "must be a JSON object"})
    nul_at = _nul_path(data)
    if nul_at is not None:
        # PostgreSQL text and jsonb cannot hold NUL: refused here (422), not by a failing INSERT (500).
        raise ValidationFailed("the body has invalid fields", errors={nul_at: "must not contain NUL characters"})
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed("the body has invalid fields", errors=_field_errors(error)) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _nul_path(data: Any) -> str | None:
    """Where a NUL character sits in parsed JSON (keys included), as "a.b.0"; None if nowhere.

    A loop, not recursion: json.loads on Python 3.12+ accepts nesting deeper than the interpreter's
    recursion limit, which a recursive walk would then hit (a 500 instead of an answer)."""
    pending: list[tuple[Any, str]] = [(data, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "body"
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return path or "body"
            pending.append((item, f"{path}.{key}" if path else str(key)))
    return None


def parse_query(request: flask.Request, model: type[M]) -> M:
    """Validate query parameters against ``model`` (each given at most once)."""
    args = request.args
    repeated = [k for k in args if len(args.getlist(k)) > 1]
    if repeated:
        raise BadRequest(f"query parameter {repeated[0]!r} is given more than once")
    try:
        return model.model_validate(dict(args.items()))
    except ValidationError as error:
        raise ValidationFailed("the query has invalid parameters", errors=_field_errors(error)) from None


def problem(error: PlanterError) -> flask.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + error.type_slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if error.errors:
        body["errors"] = error.errors
    response = flask.Response(json.dumps(body), status=error.status, mimetype="application/problem+json")
    for name, value in error.headers.items():
        response.headers[name] = value
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _guarded(chunks: Iterator[str]) -> Iterator[bytes]:
    """A stream's bytes. Its generator runs after the router returned (the status is sent): an
    unexpected error is logged and ends the stream with a retry hint, never a trace to the client."""
    try:
        for chunk in chunks:
            yield chunk.encode()
    except Exception:
        logger.exception("event stream failed")
        yield b": error; reconnect\nretry: 1000\n\n"


def _to_response(reply: Reply) -> flask.Response:
    body = reply.body
    if isinstance(body, bytes):  # a static file (the web page): its Content-Type is in the headers
        raw = flask.Response(body, status=reply.status)
        raw.headers.update(reply.headers)
        return raw
    if isinstance(body, EventStream):
        response = flask.Response(_guarded(body.chunks), status=reply.status)
        response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
        # No proxy or browser may keep or buffer a live stream.
        response.headers["Cache-Control"] = "no-cache, no-store"
        response.headers["X-Accel-Buffering"] = "no"
        response.headers.update(reply.headers)
        return response
    text = body.text if isinstance(body, JsonText) else "" if body is None else _json_text(body)
    response = flask.Response(text, status=reply.status, mimetype="application/json" if text else None)
    response.headers.update(reply.headers)
    return response


class RouteTable:
    """Finds the first of ``routes`` (in order) that serves a method and path. Built once per
    instance: a path without parameters is answered by one dict lookup, the rest by the scan."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._literal: dict[tuple[str, str], Route] = {}
        for route in self.routes:
            # Unless an earlier route's pattern takes that path first (then the scan finds it).
            found = self._scan(route.method, route.path) if "{" not in route.path else None
            if found is not None and found[0] is route:
                self._literal[(route.method, route.path)] = route

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its path parameters (a fresh dict: a handler may keep it), or None."""
        literal = self._literal.get((method, path))
        if literal is not None:
            return literal, {}
        return self._scan(method, path)

    def _scan(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, found.groupdict()
        return None


@dataclass
class Router:
    """Matches requests to a set of routes and runs their handlers with the instance's runtime."""

    routes: Sequence[Route]
    # The instance's runtime, built on the first request (functions.entry) or given (tests).
    runtime: Callable[[], Runtime]
    resolve_user: UserResolver
    # Every route of the API: preflights and 405s name the methods of all functions on a path.
    all_routes: Sequence[Route] = ()
    table: RouteTable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.table = RouteTable(self.routes)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        found = self.table.find(method, path)
        if found is not None:
            return found
        allowed = self.allowed_methods(path)
        # A method that another function serves on this path is not "not allowed": it is not here.
        if allowed and method not in allowed:
            raise MethodNotAllowed(f"{method} is not allowed here", headers={"Allow": ", ".join([*allowed, "OPTIONS"])})
        raise NotFound(f"no route for {path}")

    def allowed_methods(self, path: str) -> list[str]:
        return sorted({r.method for r in (*self.routes, *self.all_routes) if r.pattern.match(path)})

    def handle(self, request: flask.Request) -> flask.Response:
        """Answer one request; every failure becomes problem+json, never a trace."""
        # Headers read from the WSGI environ: werkzeug's Headers.get raises and catches an
        # exception for each absent header (Origin and the trace header, on most requests).
        environ = request.environ
        origin = environ.get("HTTP_ORIGIN")
        method, path = request.method, request.path
        log.request_fields.set({})
        trace = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", "").split("/")[0]
        log.bind(trace=trace, path=path, method=method)
        cors_origins: tuple[str, ...] = ()
        try:
            rt = self.runtime()
            cors_origins = rt.settings.cors_origins
            if method == "OPTIONS":
                response = self._preflight(request, cors_origins)
            else:
                route, params = self._match(method, path)
                call = Call(rt=rt, request=request, params=params, route=route)
                self._authenticate(call)
                reply = route.handler(call)
                if route.conditional:
                    reply = conditional_reply(request, reply)
                response = _to_response(reply)
        except PlanterError as error:
            response = problem(error)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
            if not is_disconnect(error):
                logger.exception("unexpected database error")
                response = problem(PlanterError("an unexpected error occurred"))
            else:
                response = problem(DatabaseUnavailable())
        except Exception:
            logger.exception("unhandled error")
            response = problem(PlanterError("an unexpected error occurred"))
        _add_cors(response, origin, cors_origins)
        return response

    def _authenticate(self, call: Call) -> None:
        kind = call.route.auth
        environ = call.request.environ
        authorization = environ.get("HTTP_AUTHORIZATION")
        tokens = call.rt.tokens
        if kind == "user":
            identity = tokens.user(auth.bearer_token(authorization))
            call.caller = self.resolve_user(call.rt, identity)
            log.bind(user=identity.email)
        elif kind == "stream":
            token = call.request.args.get("access_token")
            if token is None:
                identity = tokens.user(auth.bearer_token(authorization))
            else:
                named = verify_stream_token(token, call.rt.settings)
                identity = auth.Identity(email=named.email, subject=None)
            call.caller = self.resolve_user(call.rt, identity)
            log.bind(user=identity.email)
        elif kind == "callback":
            tokens.callback(auth.bearer_token(authorization), call.params.get("task_id", ""))
            log.bind(task_id=call.params.get("task_id", ""))
        elif kind == "internal":
            body = read_body(call.request, call.rt.settings.max_body_bytes)
            if call.request.method == "GET":
                # A GET has no body: its signature covers the path with its query string.
                query = call.request.query_string.decode("latin-1")
                body = (call.request.path + (f"?{query}" if query else "")).encode()
            tokens.step_caller(environ.get(_SIGNATURE_ENVIRON), authorization, body)

    def _preflight(self, request: flask.Request, cors_origins: tuple[str, ...]) -> flask.Response:
        methods = self.allowed_methods(request.path)
        if not methods:
            raise NotFound(f"no route for {request.path}")
        response = flask.Response(status=204)
        response.headers.pop("Content-Type", None)  # no body, so no type (Flask would say text/html)
        response.headers["Allow"] = ", ".join([*methods, "OPTIONS"])
        if request.environ.get("HTTP_ORIGIN") in cors_origins:
            response.headers["Access-Control-Allow-Methods"] = ", ".join([*methods, "OPTIONS"])
            response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response


def _add_cors(response: flask.Response, origin: str | None, cors_origins: tuple[str, ...]) -> None:
    if "Vary" in response.headers:
        response.vary.add("Origin")
    else:  # the usual case, without parsing an empty header set first
        response.headers["Vary"] = "Origin"
    if origin and origin in cors_origins:
        # The origin is echoed, never "*": tokens travel with these requests.
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
