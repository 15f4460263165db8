"""The template repositories seeded into the local GitHub (a small but real service skeleton)."""

from __future__ import annotations

PLANTER_ORG = "planter-projects"
TEMPLATE_OWNER = "planter-templates"

PYTHON_SERVICE = {
    "README.md": "# python-service\n\nA template for a small Python web service: "
    "a Flask app, tests and a Dockerfile.\n",
    "pyproject.toml": '[project]\nname = "python-service"\nversion = "0.1.0"\ndescription = "A template service"\n'
    'requires-python = ">=3.11"\ndependencies = ["flask>=3"]\n',
    "app/__init__.py": "",
    "app/main.py": 'from flask import Flask\n\napp = Flask("python-service")\n\n\n@app.get("/")\ndef index() -> str:\n'
    '    return "python-service is running"\n',
    "config/settings.json": '{\n  "service_name": "python-service",\n  "port": 8080,\n  "log_level": "info"\n}\n',
    "tests/test_main.py": "from app.main import app\n\n\ndef test_index() -> None:\n"
    '    assert app.test_client().get("/").status_code == 200\n',
    "Dockerfile": "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install .\n"
    'CMD ["flask", "--app", "app.main", "run", "--host=0.0.0.0", "--port=8080"]\n',
}

STATIC_SITE = {
    "README.md": "# static-site\n\nA template for a static website.\n",
    "index.html": "<!doctype html>\n<title>static-site</title>\n<h1>static-site</h1>\n",
    "config/settings.json": '{\n  "site_name": "static-site"\n}\n',
}

TEMPLATES: dict[str, tuple[str, dict[str, str]]] = {
    f"{TEMPLATE_OWNER}/python-service": (
        "A Python web service: a Flask app with tests and a Dockerfile",
        PYTHON_SERVICE,
    ),
    f"{TEMPLATE_OWNER}/static-site": ("A static website", STATIC_SITE),
}
