"""A local Gemini: `POST .../models/{model}:generateContent` in both URL shapes google-genai uses.

Vertex AI: `/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`;
Developer API: `/v1beta/models/{m}:generateContent` (or `/v1/...`). Answers are DERIVED FROM THE
PROMPT, so a test can tell that the caller's context reached the model:
- with a JSON `responseSchema` / `responseJsonSchema`: a schema-valid object whose strings are
  lines of the prompt, taken in order; or, when the prompt briefs it on a project (its name and
  what it is for), the README, description and issues a model would write from the brief's words
  (dev/standins/gemini_brief.py);
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
import json
import re
from collections.abc import Iterator
from typing import Any

from dev.standins.gemini_brief import Brief, brief_of
from dev.standins.google_errors import google_error
from dev.standins.json_api import JsonApiStandIn, Reply, Request
from dev.standins.serving import serve_alone

_GENERATE = re.compile(
    r"^/v1[a-z0-9]*/(?:projects/[^/]+/locations/[^/]+/publishers/google/)?models/(?P<model>[^/:]+):generateContent$"
)
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


def value_for(schema: dict[str, Any], root: dict[str, Any], lines: _Lines, brief: Brief | None = None) -> Any:
    """A value valid for ``schema`` (the OpenAPI subset Gemini takes, or JSON Schema)."""
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        options = [o for o in _get(schema, key, []) if _kind(_resolve(o, root)) != "null"]
        if options:
            return value_for(options[0], root, lines, brief)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = _kind(schema)
    if kind == "object":
        return _object_for(schema, root, lines, brief)
    if kind == "array":
        low = int(_get(schema, "minItems", 1))
        high = int(_get(schema, "maxItems", max(low, 2)))
        wanted = len(brief.features) + 2 if brief else 2  # a briefed plan: one item per feature, and chores
        items = schema.get("items", {"type": "string"})
        return [value_for(items, root, lines, brief) for _ in range(max(low, min(wanted, high)))]
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


def _object_for(schema: dict[str, Any], root: dict[str, Any], lines: _Lines, brief: Brief | None) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties", {})
    if brief is None:
        return {name: value_for(sub, root, lines) for name, sub in props.items()}
    required = set(schema.get("required", []))
    answer: dict[str, Any] = {}
    for name in sorted(props, key=lambda n: n != "title"):  # a body is written for its title
        sub = _resolve(props[name], root)
        max_length = _get(sub, "maxLength")
        written = brief.text(name, int(max_length) if max_length else None) if _kind(sub) == "string" else None
        if written is not None:
            answer[name] = written
        elif name == "labels" and _kind(sub) == "array":
            answer[name] = brief.labels()
        elif name in required or _kind(sub) in ("object", "array"):
            answer[name] = value_for(sub, root, lines, brief)
    return {name: answer[name] for name in props if name in answer}


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
    return value_for(schema, schema, _Lines(turns or prompt_text(body)), brief_of(turns))


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
class GeminiStandIn(JsonApiStandIn):
    """The server, run on a thread of this process (make dev, tests) or alone (__main__)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        # Every generateContent request received, faulted ones too: what `GET /_requests` lists.
        self.requests: list[dict[str, Any]] = []
        super().__init__(port, host, "gemini-stand-in")

    def control(self, request: Request) -> Reply | None:
        if request.path != "/_requests":
            return super().control(request)
        with self.lock:
            if request.method == "DELETE":
                self.requests.clear()
                return Reply(204, b"")
            return Reply(200, {"requests": list(self.requests)})

    def answer(self, request: Request) -> Reply:
        if request.method == "POST" and _GENERATE.match(request.path) and isinstance(request.body, dict):
            with self.lock:
                self.requests.append({"path": request.path, "body": request.body, "prompt": prompt_text(request.body)})
        return super().answer(request)

    def route(self, request: Request) -> tuple[int, Any]:
        found = _GENERATE.match(request.path)
        if not found or request.method != "POST":
            return 404, google_error(404, f"no such method: {request.method} {request.path}")
        if not isinstance(request.body, dict) or not request.body.get("contents"):
            return 400, google_error(400, "contents is required")
        return 200, generate_content(found["model"], request.body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    serve_alone("Gemini", GeminiStandIn(parser.parse_args().port))


if __name__ == "__main__":
    main()
