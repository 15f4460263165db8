"""A local Gemini: `POST .../models/{model}:generateContent` in both URL shapes google-genai uses.

Vertex AI: `/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`;
Developer API: `/v1beta/models/{m}:generateContent` (or `/v1/...`). Answers are DERIVED FROM THE
PROMPT, so a test can tell that the caller's context reached the model:
- with a JSON `responseSchema` / `responseJsonSchema`: a schema-valid object whose strings are
  lines of the prompt, taken in order;
- otherwise: the lines of the context (the system instruction after its first paragraph, which
  is taken as the instructions, and the earlier turns) that share the most words with the last
  user message, quoted. Asked "why did my last project fail?", it quotes the
  context lines about a failed task, its step and its error.

For tests: `GET /_requests` lists every generateContent request received (path, body and the
prompt as plain text), `DELETE /_requests` forgets them; `POST /_faults` `{"method", "path"
(regex), "status", "times", "headers"?, "body"?}` answers the next `times` matching requests with
that status (default body: Google's `{"error": {"code", "message", "status"}}`), `DELETE /_faults`
clears them. `python -m dev.standins.gemini --port N` runs it alone.
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_GENERATE = re.compile(
    r"^/v1[a-z0-9]*/(?:projects/[^/]+/locations/[^/]+/publishers/google/)?models/(?P<model>[^/:]+):generateContent$"
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_STOPWORDS = frozenset(
    [
        "what",
        "when",
        "where",
        "which",
        "with",
        "would",
        "could",
        "should",
        "about",
        "your",
        "yours",
        "this",
        "that",
        "there",
        "their",
        "them",
        "they",
        "have",
        "from",
        "into",
        "just",
        "does",
        "will",
        "were",
        "been",
        "being",
        "dont",
        "tell",
        "please",
        "know",
        "some",
        "much",
        "many",
        "very",
        "more",
        "most",
        "also",
        "than",
        "then",
        "here",
    ]
)
_WORD = re.compile(r"[a-z0-9_]+")
_MAX_QUOTED_LINES = 8


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def body_bytes(self) -> bytes:
        if self.body is None:
            status = _STATUS_NAMES.get(self.status, "UNKNOWN")
            error = {"code": self.status, "message": f"injected fault ({status})", "status": status}
            return json.dumps({"error": error}).encode()
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


def google_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "UNKNOWN")}}


# --- answers ---------------------------------------------------------------------------------------
def _texts(content: Any) -> list[str]:
    parts = content.get("parts", []) if isinstance(content, dict) else []
    return [str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p]


def prompt_text(body: dict[str, Any]) -> str:
    """Everything the model was told: system instruction, then each turn, as plain text."""
    texts = _texts(body.get("systemInstruction") or body.get("system_instruction") or {})
    for content in body.get("contents", []):
        texts.extend(_texts(content))
    return "\n".join(texts)


def _stems(text: str) -> set[str]:
    # A crude stem (the first four letters) so that "fail", "failed" and "failure" meet.
    return {w[:4] for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOPWORDS}


def text_answer(body: dict[str, Any]) -> str:
    contents = body.get("contents", [])
    question = " ".join(_texts(contents[-1])) if contents else ""
    # The system instruction's first paragraph is taken as the instructions, the rest as context.
    system = "\n".join(_texts(body.get("systemInstruction") or {}))
    context = system.split("\n\n", 1)[1:] if "\n\n" in system else [system]
    for content in contents[:-1]:
        context.extend(_texts(content))
    lines = list(dict.fromkeys(line.strip() for text in context for line in text.splitlines() if line.strip()))
    wanted = _stems(question)
    scored = [(len(wanted & _stems(line)), i) for i, line in enumerate(lines)]
    best = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:_MAX_QUOTED_LINES]
    if not best:
        return f"I found nothing in your Planter data about: {question.strip()}"
    quoted = "\n".join(f"> {lines[i]}" for _, i in sorted(best, key=lambda s: s[1]))
    return f"From your Planter data, these lines answer “{question.strip()}”:\n{quoted}"


class _Lines:
    """The prompt's lines, handed out in order (cycling) as the strings of a JSON answer."""

    def __init__(self, text: str):
        self.lines = [line.strip() for line in text.splitlines() if line.strip()] or ["(empty prompt)"]
        self._next: Iterator[int] = iter(range(1 << 30))

    def take(self, max_length: int | None, min_length: int = 0) -> str:
        line = self.lines[next(self._next) % len(self.lines)]
        while len(line) < min_length:  # as Gemini honours minLength: the next lines too
            line = f"{line} {self.lines[next(self._next) % len(self.lines)]}"
        return line[:max_length] if max_length else line


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for key in ref[2:].split("/"):
            node = node[key]
        return _resolve(node, root)
    return schema


def value_for(schema: dict[str, Any], root: dict[str, Any], lines: _Lines) -> Any:
    """A value valid for ``schema`` (the OpenAPI subset Gemini takes, or JSON Schema)."""
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        options = [o for o in _get(schema, key, []) if _kind(_resolve(o, root)) != "null"]
        if options:
            return value_for(options[0], root, lines)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = _kind(schema)
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {name: value_for(sub, root, lines) for name, sub in props.items()}
    if kind == "array":
        low = int(_get(schema, "minItems", 1))
        high = int(_get(schema, "maxItems", max(low, 2)))
        return [value_for(schema.get("items", {"type": "string"}), root, lines) for _ in range(max(low, min(2, high)))]
    if kind in ("integer", "number"):
        least = float(schema.get("minimum", 0))
        most = float(schema["maximum"]) if "maximum" in schema else None
        if kind == "number" and most is not None and most <= 1:  # a fraction such as a confidence
            return round(least + (most - least) * 0.8, 2)
        return int(least) if kind == "integer" else least
    if kind == "boolean":
        return True
    max_length = _get(schema, "maxLength")
    return lines.take(int(max_length) if max_length is not None else None, int(_get(schema, "minLength", 0)))


def _get(schema: dict[str, Any], camel: str, default: Any = None) -> Any:
    # Proto JSON takes either spelling, and google-genai sends snake_case to Vertex AI.
    snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), camel)
    return schema.get(camel, schema.get(snake, default))


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    return str(kind).lower()


def json_answer(body: dict[str, Any]) -> Any:
    config = body.get("generationConfig", {})
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {"type": "string"}
    # Strings come from the prompt itself (the turns), not from the system instruction.
    turns = "\n".join(text for content in body.get("contents", []) for text in _texts(content))
    return value_for(schema, schema, _Lines(turns or prompt_text(body)))


def generate_content(model: str, body: dict[str, Any]) -> dict[str, Any]:
    wants_json = body.get("generationConfig", {}).get("responseMimeType") == "application/json"
    text = json.dumps(json_answer(body)) if wants_json else text_answer(body)
    prompt_tokens = len(prompt_text(body).split())
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": len(text.split()),
            "totalTokenCount": prompt_tokens + len(text.split()),
        },
        "modelVersion": model,
    }


# --- the server ----------------------------------------------------------------------------------
class GeminiStandIn:
    """The server, run on a thread of this process (make dev, tests) or alone (__main__)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer((host, port), _handler_for(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GeminiStandIn:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="gemini-stand-in")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.path.search(path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


def _handler_for(standin: GeminiStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: make dev prints its own lines
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                body = self._body()
            except ValueError:
                return self._send(400, google_error(400, "the body is not JSON"))
            if path == "/_faults":
                return self._faults(body)
            if path == "/_requests":
                return self._requests()
            if path == "/healthz":
                return self._send(200, {"status": "ok"})
            fault = standin.take_fault(self.command, path)
            found = _GENERATE.match(path)
            if found and self.command == "POST":
                with standin.lock:
                    standin.requests.append({"path": path, "body": body, "prompt": prompt_text(body)})
            if fault is not None:
                return self._send(fault.status, fault.body_bytes(), fault.headers)
            if not found or self.command != "POST":
                return self._send(404, google_error(404, f"no such method: {self.command} {path}"))
            if not isinstance(body, dict) or not body.get("contents"):
                return self._send(400, google_error(400, "contents is required"))
            self._send(200, generate_content(found["model"], body))

        def _faults(self, body: Any) -> None:
            if self.command == "DELETE":
                with standin.lock:
                    standin.faults.clear()
                return self._send(204, b"")
            try:
                fault = Fault(
                    method=str(body.get("method", "*")).upper(),
                    path=re.compile(str(body.get("path", ".*"))),
                    status=int(body["status"]),
                    times=int(body.get("times", 1)),
                    headers={str(k): str(v) for k, v in (body.get("headers") or {}).items()},
                    body=body.get("body"),
                )
            except (KeyError, TypeError, ValueError, re.error) as error:
                return self._send(400, google_error(400, f"bad fault: {error}"))
            with standin.lock:
                standin.faults.append(fault)
            self._send(201, {"fault": {"method": fault.method, "path": fault.path.pattern, "times": fault.times}})

        def _requests(self) -> None:
            with standin.lock:
                if self.command == "DELETE":
                    standin.requests.clear()
                    return self._send(204, b"")
                self._send(200, {"requests": list(standin.requests)})

        do_GET = do_POST = do_DELETE = _handle

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    standin = GeminiStandIn(parser.parse_args().port)
    print(f"Gemini stand-in on {standin.base_url}", flush=True)
    standin.server.serve_forever()


if __name__ == "__main__":
    main()
