"""No literal secret anywhere in the repository: key formats everywhere, password-looking
assignments everywhere but the development placeholders of common/config.py and the tests."""

from __future__ import annotations

import re

from tests.unit import deploy_support as ds

# --- no secrets in the repository ---------------------------------------------------------------

_KEY_FORMATS = {
    "private key block": re.compile("-" * 5 + r"BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY" + "-" * 5),
    "service-account key": re.compile(r'"private_key"\s*:\s*"[^"]{20,}'),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
}
_ASSIGNMENTS = {
    "quoted secret assignment": re.compile(
        r"(?i)\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key)\w*['\"]?\s*[:=]\s*"
        r"[bf]?['\"]([^'\"\s]{8,})['\"]"
    ),
    # YAML, ini, .env and shell lines (in Python a bare name on the right is a variable).
    "password in a config line": re.compile(r"(?im)^\s*[\w.-]*(?:password|passwd)\w*\s*[:=]\s*([^\s'\"#]{6,})\s*$"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:([^\s/@'\"]{3,})@"),
    "password in a DSN": re.compile(r"(?i)\bpassword=([^\s'\"&;,)]{6,})"),
}
# Obvious placeholders and references, not values: dev-only defaults, shell/Cloud Build
# expansions, documentation stand-ins.
_PLACEHOLDER = re.compile(
    r"(?i)dev-only|change-?me|example|placeholder|dummy|fake|not-a-secret|redacted|your[-_]|xxx|test|"
    r"^[\$<{%(]|\$\{|\$\(|^[A-Z_]+$|^\*+$|^\.\.\.$|^\w+\(|getpass|environ|settings\.|args\.|secrets?\b"
)
_ASSIGNMENT_ALLOWED = ("tests/", "common/config.py")
_BINARY = {".png", ".jpg", ".gif", ".ico", ".whl", ".gz", ".zip", ".pdf", ".woff", ".woff2"}


def _secret_findings(rel: str, text: str) -> list[str]:
    findings = [f"{rel}: {kind}" for kind, rx in _KEY_FORMATS.items() if rx.search(text)]
    if rel.startswith(_ASSIGNMENT_ALLOWED):
        return findings
    for kind, rx in _ASSIGNMENTS.items():
        if kind == "password in a config line" and rel.endswith(".py"):
            continue
        for match in rx.finditer(text):
            if not _PLACEHOLDER.search(match.group(1)):
                line = text.count("\n", 0, match.start()) + 1
                findings.append(f"{rel}:{line}: {kind} ({match.group(0)[:60]!r})")
    return findings


def test_the_secret_scan_catches_what_it_is_for() -> None:
    # Each sample is assembled at run time, so that no scanner of the repository takes it for a leak.
    samples = {
        "a.py": 'DB_PASSWORD = "' + "Tr0ub4dor" + '-and-3"\n',
        "b.md": "postgresql://planter:" + "S3cret" + "Value@10.0.0.3/planter\n",
        "c.yaml": "password: " + "hunter2" * 2 + "\n",
        "d.txt": "-" * 5 + "BEGIN RSA PRIVATE KEY" + "-" * 5 + "\nMIIE\n",
        "e.json": '{"private_key": "' + "k" * 40 + '"}',
        "f.ini": "dsn = host=db user=planter password=" + "0pen" + "Sesame99\n",
        "g.py": "token = 'ghp_" + "a1B2" * 9 + "'\n",
    }
    for rel, text in samples.items():
        assert _secret_findings(rel, text), rel
    clean = {
        "a.py": 'password = os.environ["DB_PASSWORD"]\nsecret = settings.step_signing_secret\n',
        "b.md": 'gcloud secrets create planter-jwt-secret --data-file=- <<<"$(openssl rand -base64 48)"\n',
        "c.yaml": "_JWT_SECRET: planter-jwt-secret\n",
        "tests/x.py": 'TEST_SECRET = "only-for-the-suite-0123456789"\n',
    }
    for rel, text in clean.items():
        assert _secret_findings(rel, text) == [], rel


def test_no_literal_secret_anywhere_in_the_repository() -> None:
    findings: list[str] = []
    for rel in ds.repository_files():
        path = ds.ROOT / rel
        if path.suffix in _BINARY or path.stat().st_size > 2_000_000:
            continue
        name = path.name
        if (
            name == ".env"
            or (name.endswith(".env") and "example" not in name)
            or path.suffix in {".pem", ".p12", ".key"}
        ):
            findings.append(f"{rel}: a credentials file is part of the repository")
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        findings += _secret_findings(rel, text)
    assert findings == []
