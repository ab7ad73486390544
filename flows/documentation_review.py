"""documentation-review: the guide's monthly "Documentation Maintenance" checklist, as checks that can fail."""

from datetime import datetime, timezone
from typing import Annotated

from pydantic import Field

from playground_ops.runbook import runbook
from tasks.dependencies.steps import prepare_repository, require_repository, workdir_for
from tasks.documentation.docs_checks import compare, read_docs
from tasks.documentation.sources import check_doc_paths, read_doc_files, read_env_var_names, read_served_endpoints
from tasks.reporting.publish import publish
from tasks.reporting.report import Report
from tasks.targets import load_alert_rules, load_target


@runbook("documentation-review", timeout_seconds=900)
def documentation_review(target: str | None = None, docs: list[str] = ["README.md", "docs"],  # noqa: B006
                         stale_after_days: Annotated[int, Field(ge=1, le=3650)] = 90) -> Report:
    """The repository's docs against what is live: every environment variable of the service documented (names
    only) and every documented one existing; the alert thresholds the docs state equal to the rules file's; the
    endpoints the backend served in 30 days in the API docs; a Next Review date in the past. Report only.

    Args:
        target: The target to work on, as named in the targets file or TARGET_NAME (empty: the default target).
        docs: The Markdown files or folders of the repository that hold its documentation.
        stale_after_days: Docs whose Last Updated date is older than this are a finding.
    """
    check_doc_paths(docs)
    t = load_target(target)
    repo = require_repository(t.repository, t.name)
    workdir = workdir_for(t.name, "documentation-review")
    prepare_repository(repo, workdir)
    files = read_doc_files(workdir / "repo", docs)
    live = read_env_var_names.submit(t.platform) if t.platform.kind == "render" else None
    served = read_served_endpoints.submit(t.database_url, t.app_schema)
    live_names = live.result(raise_on_failure=False) if live else None
    served_counts = served.result(raise_on_failure=False)
    tables, findings = compare(read_docs(files), None if isinstance(live_names, BaseException) else live_names,
                               load_alert_rules().rules,
                               None if isinstance(served_counts, BaseException) else served_counts,
                               datetime.now(timezone.utc).date(), stale_after_days)

    report = Report(runbook="documentation-review", target=t.name, tables={"files": [{"file": f} for f in files],
                                                                           **tables},
                    figures={"files": len(files)})
    for severity, message, next_step in findings:
        report.add(severity, message, next_step=next_step)
    for name, outcome in (("the service's environment variables", live_names), ("the served endpoints", served_counts)):
        if isinstance(outcome, BaseException):
            report.add("warning", f"{name} could not be read: {outcome}")
    if live is None:
        report.add("info", "no platform configured (RENDER_SERVICE_ID): environment variables not compared")
    if not files:
        report.add("warning", f"no Markdown found at {', '.join(docs)}", next_step="Point `docs` at the documentation.")
    problems = sum(f.severity.value != "info" for f in report.findings)
    report.summary = (f"{len(files)} docs read; {problems} things the docs get wrong or miss" if problems
                      else f"{len(files)} docs read; they match what is live")
    return publish(report)
