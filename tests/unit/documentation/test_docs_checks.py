"""The documentation checklist on paper: what Markdown documents, compared with what is live."""

from __future__ import annotations

from datetime import date

from tasks.documentation.docs_checks import compare, read_docs, threshold_of
from tasks.monitoring.alert_rules import DEFAULT_RULES, load_rules

DOC = """# Operations

Last Updated: 2026-06-01
**Next Review:** November 1, 2026

## Environment variables

| Name | What |
|---|---|
| `DATABASE_URL` | PostgreSQL |
| REDIS_URL | Redis |
- `JWT_SECRET`: signing key
- LEGACY_TOKEN no longer used

```
APP_VERSION=1.0.0
```

Use the API with a JWT over HTTP.

## Alerts

| Alert | Threshold | For |
|---|---|---|
| HighErrorRate | > 5% | 5m |
| HighLatency | p95 > 2s | 5m |
| GhostAlert | 9 | 1m |

## API

- `GET /api/chat`
- POST /api/images
"""
README = "# App\n\nSet `NODE_ENV=production` before starting.\n\n```sh\nexport SENTRY_DSN=...\n```\n"


def test_what_markdown_documents():
    docs = read_docs({"docs/ops.md": DOC, "README.md": README})
    assert set(docs.env_vars) == {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "LEGACY_TOKEN", "APP_VERSION"}
    assert {"NODE_ENV", "SENTRY_DSN"} <= docs.mentioned and "JWT" not in docs.mentioned  # prose is not a name
    assert docs.thresholds["HighLatency"] == ("p95 > 2s", "docs/ops.md")
    assert set(docs.endpoints) == {"/api/chat", "/api/images"}
    assert docs.dates["next review"][0] == date(2026, 11, 1) and docs.dates["last updated"][0] == date(2026, 6, 1)
    assert threshold_of("p95 > 2s", "p95_latency_ms") == 2000 and threshold_of("> 5%", "error_rate_pct") == 5


def test_live_against_documented():
    docs = read_docs({"docs/ops.md": DOC, "README.md": README})
    live = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "APP_VERSION", "NODE_ENV", "SENTRY_DSN", "STRIPE_KEY"}
    tables, findings = compare(docs, live, load_rules(DEFAULT_RULES).rules, {"/api/chat": 10, "/api/embeddings": 2},
                               date(2026, 11, 30), 90)
    messages = [m for _, m, _ in findings]
    assert "1 environment variables are live but not documented: STRIPE_KEY" in messages  # mentioned ones count
    assert "1 documented environment variables do not exist on the service: LEGACY_TOKEN" in messages
    assert not any(m.startswith("HighLatency") or m.startswith("HighErrorRate") for m in messages)  # 2s is 2000 ms
    assert "the docs state thresholds for alerts the rules file does not have: GhostAlert" in messages
    assert "1 endpoints the backend serves are not in the API documentation: /api/embeddings" in messages
    assert any("Next Review date 2026-11-01" in m for m in messages)
    assert any("last updated 2026-06-01" in m for m in messages)
    unread, _ = compare(docs, None, [], None, date(2026, 11, 30), 90)
    assert "environment_variables" not in unread and "endpoints" not in unread  # not read: not guessed
