"""documentation-review end to end: the sandbox application's repository (real git), the platform stand-in's
environment variables, the sandbox database's requests, the session's Prefect server."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from tests.flows.test_dependency_runbooks import make_repo, push_commit, show


@pytest.fixture
def platform(sandbox):
    from tasks.platform.render_platform import Render

    return Render(os.environ["RENDER_API_URL"], SecretStr(os.environ["RENDER_API_KEY"]), backoff=0.1)


@pytest.fixture
def consistent(tmp_path, monkeypatch, platform):
    """The sandbox's application with its docs made consistent with what is live right now (another test may have
    left a variable on the service)."""
    from sandbox.app_repo import SERVICE_ENV, operations_doc

    bare = make_repo(tmp_path)
    live = set(platform.list_env_vars(os.environ["RENDER_SERVICE_ID"]))
    doc = operations_doc()
    extra = "".join(f"| `{name}` | set on the service |\n" for name in sorted(live - set(SERVICE_ENV)))
    doc = doc.replace("\n\n## Alert thresholds", "\n" + extra.rstrip("\n") + "\n\n## Alert thresholds" if extra
                      else "\n\n## Alert thresholds")
    for gone in set(SERVICE_ENV) - live:
        doc = doc.replace(f"| `{gone}` | set on the service |\n", "")
    push_commit(bare, "main", {"docs/operations.md": doc}, "docs: the service as it is")
    monkeypatch.setenv("OPS_REPO_URL", str(bare))
    return bare


def test_consistent_docs_give_a_clean_report(consistent):
    from flows.documentation_review import documentation_review

    report = documentation_review()
    assert report.status.value == "ok", [f.message for f in report.findings]
    assert [f.severity.value for f in report.findings] == ["info"]  # /api/token records no requests: named, not wrong
    assert "/api/token" in report.findings[0].message
    assert {r["alert"] for r in report.tables["alert_thresholds"] if r["docs"]} == \
        {r["alert"] for r in report.tables["alert_thresholds"]}
    assert report.tables["files"] == [{"file": "README.md"}, {"file": "docs/operations.md"}]


def test_an_undocumented_variable_and_a_stale_threshold_are_found_and_nothing_else(consistent, platform):
    from flows.documentation_review import documentation_review

    doc = show(consistent, "main", "docs/operations.md") + "\n"
    push_commit(consistent, "main", {"docs/operations.md": doc.replace("| HighLatency | > 2000 |", "| HighLatency | > 3s |")},
                "docs: an old latency threshold")
    service = os.environ["RENDER_SERVICE_ID"]
    platform.set_env_var(service, "SENTRY_DSN", SecretStr("https://key-not-in-any-report@sentry.example/1"))
    try:
        report = documentation_review()
    finally:
        platform.delete_env_var(service, "SENTRY_DSN")
    warnings = sorted(f.message for f in report.findings if f.severity.value == "warning")
    assert warnings == ["1 environment variables are live but not documented: SENTRY_DSN",
                        "HighLatency: the docs state '> 3s' (docs/operations.md), the rules file > 2000 "
                        "(p95_latency_ms)"]
    assert "key-not-in-any-report" not in report.model_dump_json()


def test_a_docs_path_outside_the_repository_is_refused_in_one_line(consistent):
    from flows.documentation_review import documentation_review
    from playground_ops.runbook import RunbookFailed

    with pytest.raises(RunbookFailed, match=r"docs: expected paths inside the repository such as README.md or docs "
                                            r"\(got '../../etc'\)"):
        documentation_review(docs=["docs", "../../etc"])
