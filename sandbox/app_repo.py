"""The sandbox's application repository: a bare git repository of a small playground app whose `backend/` and
`frontend/` npm projects (with tests) pin older releases of a few small real packages, plus a Python project.

The dependency runbooks clone it, update it, test it and push branches to it, exactly as they would the real one.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tasks.dependencies.git_repo import commit_all, git

BACKEND = {"name": "playground-backend", "version": "1.0.0", "private": True,
           "scripts": {"test": "node test.js"},
           "dependencies": {"ms": "2.0.0", "minimist": "1.2.0", "debug": "2.6.8"}}
FRONTEND = {"name": "playground-frontend", "version": "1.0.0", "private": True,
            "scripts": {"test": "node test.js"},
            "dependencies": {"is-number": "6.0.0", "escape-html": "1.0.2"}}
ROOT = {"name": "playground", "version": "1.0.0", "private": True,
        "scripts": {"test:integration": "node -e \"require('./backend/node_modules/ms'); "
                                        "require('./frontend/node_modules/is-number'); console.log('integration ok')\""}}
BACKEND_TEST = """const assert = require('assert');
const ms = require('ms');
const minimist = require('minimist');
assert.strictEqual(ms('2h'), 7200000);
assert.deepStrictEqual(minimist(['--quota', '5']).quota, 5);
console.log('backend ok');
"""
FRONTEND_TEST = """const assert = require('assert');
const isNumber = require('is-number');
const escape = require('escape-html');
assert.ok(isNumber(5) && !isNumber('x'));
assert.strictEqual(escape('<b>'), '&lt;b&gt;');
console.log('frontend ok');
"""
PYTHON_REQUIREMENTS = "six==1.15.0\nidna==3.6\n"
PYTHON_TEST = """import idna
import six


def test_dependencies_work():
    assert six.PY3 and idna.encode("playground.example") == b"playground.example"
"""


RENDER_YAML = """# Render blueprint of the AI API Playground
services:
  - type: web
    name: ai-api-playground-backend
    runtime: node
    plan: starter
    buildCommand: cd backend && npm ci
    startCommand: cd backend && node server.js
    healthCheckPath: /health
    envVars:
      - key: NODE_ENV
        value: production
      - key: DATABASE_URL
        fromDatabase: {name: playground-db, property: connectionString}
      - key: REDIS_URL
        sync: false
      - key: JWT_SECRET
        sync: false
  - type: web
    name: ai-api-playground-frontend
    runtime: static
    buildCommand: cd frontend && npm ci && npm run build
    staticPublishPath: frontend/dist
    envVars:
      - key: VITE_API_URL
        sync: false
databases:
  - name: playground-db
    plan: starter
"""
SERVICE_ENV = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "APP_VERSION", "NODE_ENV")  # what the service has live
API = [("POST", "/api/token"), ("POST", "/api/chat"), ("POST", "/api/completions"), ("POST", "/api/embeddings"),
       ("POST", "/api/images"), ("GET", "/api/models"), ("GET", "/health")]


def operations_doc(today: date | None = None) -> str:
    """docs/operations.md as the playground's maintainers keep it: the environment, the alert thresholds (those the
    shipped rules file enforces), the API, and the review dates."""
    from tasks.monitoring.alert_rules import DEFAULT_RULES, load_rules

    today = today or datetime.now(timezone.utc).date()
    env = "\n".join(f"| `{name}` | set on the service |" for name in SERVICE_ENV)
    alerts = "\n".join(f"| {r.name} | {r.op} {r.threshold:g} | {r.severity} |" for r in load_rules(DEFAULT_RULES).rules)
    api = "\n".join(f"- `{method} {path}`" for method, path in API)
    return (f"# Operations\n\nLast Updated: {today.isoformat()}\nNext Review: {(today + timedelta(days=30)).isoformat()}"
            f"\n\n## Environment variables\n\n| Name | Where |\n|---|---|\n{env}\n\n## Alert thresholds\n\n"
            f"| Alert | Threshold | Severity |\n|---|---|---|\n{alerts}\n\n## API\n\n{api}\n")


def write_app(path: Path) -> None:
    """The application's files, as a developer would commit them (no node_modules, no lock files yet)."""
    files = {"backend/package.json": json.dumps(BACKEND, indent=2) + "\n", "backend/test.js": BACKEND_TEST,
             "frontend/package.json": json.dumps(FRONTEND, indent=2) + "\n", "frontend/test.js": FRONTEND_TEST,
             "package.json": json.dumps(ROOT, indent=2) + "\n", "python/requirements.txt": PYTHON_REQUIREMENTS,
             "python/test_app.py": PYTHON_TEST, ".gitignore": "node_modules/\n.venv/\n__pycache__/\n",
             "README.md": "# AI API Playground (sandbox copy)\n", "docs/operations.md": operations_doc(),
             "render.yaml": RENDER_YAML}
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)


def create_app_repo(root: Path, name: str = "playground-app") -> Path:
    """A bare repository at root/<name>.git with the app on `main`; an existing one is kept as it is."""
    bare = root / f"{name}.git"
    if bare.exists():
        return bare
    with tempfile.TemporaryDirectory(prefix=f"{name}-seed-") as seed:
        work = Path(seed)
        write_app(work)
        git("init", "--quiet", "-b", "main", cwd=work)
        commit_all(work, "Initial commit of the playground app")
        root.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare
