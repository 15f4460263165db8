"""What the Gemini stand-in writes when a prompt briefs it on a project, as a model would.

A prompt that names a project ("... the new project Team Guestbook (owner/repo).") and says what it
is for ("What the user wants: ..." or "What the project is for: ...") is a brief. The stand-in then
fills the fields a model would write for it from the brief's own words, so what a local run plants
reads like a project's README and first issues, not like the prompt:
- ``description``: one sentence; ``readme``: a Markdown README with the brief's features;
- issues: a ``title`` per feature of the brief (its focus first, if it has one), then the chores
  every project has, never one the prompt lists as already there; a ``body`` with the goal and
  acceptance criteria; ``labels`` by kind of work.
Optional fields it has no words for (a template's config values) are left out, as a model leaves
out what it has no reason to change. Every other prompt gets the stand-in's plain answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_PROJECT = re.compile(r"\bproject (?P<name>[^\n]+?)(?: \([^)\n]*\))?\.$", re.M)
_PURPOSE = re.compile(r"^What (?:the user wants|the project is for): (?P<text>.+)$", re.M)
_FOCUS = re.compile(r"^Focus the new issues on: (?P<text>.+)$", re.M)
_LISTED = re.compile(r"^- (?P<title>.+)$", re.M)
_FILE = re.compile(r"^--- (?P<path>\S+) ---$", re.M)
_SPLIT = re.compile(r",|;|\band\b|\bwith\b|\bplus\b", re.I)
_NO_DESCRIPTION = "(no description given)"


@dataclass
class Brief:
    name: str
    purpose: str
    features: list[str]
    taken: set[str]
    files: list[str]
    _titles: Iterator[str] = field(init=False)
    title: str = ""

    def __post_init__(self) -> None:
        self._titles = self._candidates()

    def text(self, field_name: str, max_length: int | None) -> str | None:
        """The value of a string field this brief has words for, else None."""
        writers = {"description": self.description, "readme": self.readme, "body": self.body}
        if field_name == "title":
            self.title = next(self._titles)
            value = self.title
        elif field_name in writers:
            value = writers[field_name]()
        else:
            return None
        return value[:max_length] if max_length else value

    def labels(self) -> list[str]:
        kind = self.title.split(" ", 1)[0].lower()
        return {"write": ["testing"], "document": ["documentation"], "set": ["ci"]}.get(kind, ["enhancement"])

    def description(self) -> str:
        # "A guestbook for our team" → "Team Guestbook is a guestbook for our team."
        lowered = _lower_article(self.purpose)
        return _sentence(f"{self.name} is {lowered}" if lowered != self.purpose else f"{self.name}: {self.purpose}")

    def readme(self) -> str:
        features = "\n".join(f"- {_capital(f)}" for f in self.features) or f"- {_capital(self.purpose)}"
        layout = "\n".join(f"- `{path}`" for path in self.files)
        return (
            f"# {self.name}\n\n{_sentence(_capital(self.purpose))}\n\n## What it does\n\n{features}\n\n"
            + (f"## Layout\n\n{layout}\n\n" if layout else "")
            + "## Next steps\n\nThe repository's first issues plan the work, one feature each.\n"
        )

    def body(self) -> str:
        return (
            f"## Goal\n\n{_sentence(self.title)}\n\n{self.description()}\n\n## Acceptance criteria\n\n"
            "- [ ] It works end to end in the deployed service\n- [ ] A test covers it\n"
            "- [ ] The README says how to use it\n"
        )

    def _candidates(self) -> Iterator[str]:
        verbs = ("Build", "Add", "Implement")
        wanted = [f"{verbs[min(i, 2)]} {_lower_article(f)}" for i, f in enumerate(self.features)]
        chores = [
            f"Write tests for the main flows of {self.name}",
            f"Document how to run and deploy {self.name}",
            f"Set up continuous integration for {self.name}",
            f"Add error handling and logging to {self.name}",
        ]
        round_ = 1
        while True:
            for base in (*wanted, *chores):
                title = base if round_ == 1 else f"{base} (part {round_})"
                if title.lower() not in self.taken:
                    self.taken.add(title.lower())
                    yield title
            round_ += 1


def brief_of(prompt: str) -> Brief | None:
    project, purpose = _PROJECT.search(prompt), _PURPOSE.search(prompt)
    if not project or not purpose:
        return None
    text = purpose["text"].strip()
    focus = _FOCUS.search(prompt)
    described = "" if text == _NO_DESCRIPTION else text
    features = _phrases(focus["text"]) if focus else []
    features += [p for p in _phrases(described) if p not in features]
    return Brief(
        name=project["name"].strip(),
        purpose=described or f"a new project named {project['name'].strip()}",
        features=features,
        taken={m["title"].strip().lower() for m in _LISTED.finditer(prompt)},
        files=[m["path"] for m in _FILE.finditer(prompt)],
    )


def _phrases(text: str) -> list[str]:
    return [p for p in (part.strip(" .") for part in _SPLIT.split(text)) if len(p) >= 3]


def _lower_article(phrase: str) -> str:
    first, _, rest = phrase.partition(" ")
    return f"{first.lower()} {rest}" if first.lower() in ("a", "an", "the") and rest else phrase


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
