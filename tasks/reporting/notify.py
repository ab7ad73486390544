"""Notifications to operators, through the Prefect notification block that `playground-ops setup` creates."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.blocks.core import Block

from playground_ops.redact import redact
from tasks.retry import retrying

BLOCK_TYPES = ("custom-webhook", "slack-webhook")


def load_notification_block(name: str) -> Block | None:
    """The notification block of that name, whichever supported type it is; None if there is none."""
    for slug in BLOCK_TYPES:
        try:
            return Block.load(f"{slug}/{name}")
        except ValueError:
            continue
    return None


@task(**retrying(retries=3, backoff=2, timeout_seconds=30))
def send_notification(subject: str, body: str, block_name: str) -> bool:
    """Send one notification to the operators; False (and a warning in the log) if none is configured."""
    block = load_notification_block(block_name)
    if block is None:
        get_run_logger().warning("No notification block named %r: run `playground-ops setup`.", block_name)
        return False
    block.notify(body=redact(body), subject=redact(subject))
    return True


@task(**retrying(retries=3, backoff=1, timeout_seconds=30))
def emit_alert_fired(target: str, rule: str, severity: str, diagnostics: str | None, value: float | None) -> bool:
    """A Prefect event for an alert that began firing; the diagnostics automation starts the rule's runbook from it
    (the event names that runbook's deployment). False when the deployment is not registered."""
    from prefect import get_client
    from prefect.events import emit_event
    from prefect.exceptions import ObjectNotFound

    related = []
    if diagnostics:
        try:
            with get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name(f"{diagnostics}/{diagnostics}")
            related.append({"prefect.resource.id": f"prefect.deployment.{deployment.id}",
                            "prefect.resource.role": "deployment", "prefect.resource.name": diagnostics})
        except ObjectNotFound:
            get_run_logger().warning("No deployment %s/%s: start it by hand (playground-ops run %s)",
                                     diagnostics, diagnostics, diagnostics)
    emit_event(event="playground-ops.alert.firing",
               resource={"prefect.resource.id": f"playground-ops.alert.{target}.{rule}",
                         "prefect.resource.name": rule, "playground-ops.target": target,
                         "playground-ops.severity": severity, "playground-ops.diagnostics": diagnostics or ""},
               related=related, payload={"value": value})
    return bool(related)


@task(**retrying(retries=3, backoff=1, timeout_seconds=30))
def emit_incident_due(target: str, rule: str, severity: str, fired_at: str) -> None:
    """A Prefect event for a critical alert that has fired for OPS_INCIDENT_AFTER: the incident automation starts
    the incident runbook from it (one incident per alert: the runbook attaches a second start)."""
    from prefect.events import emit_event

    emit_event(event="playground-ops.incident.due",
               resource={"prefect.resource.id": f"playground-ops.alert.{target}.{rule}",
                         "prefect.resource.name": rule, "playground-ops.target": target,
                         "playground-ops.severity": severity}, payload={"fired_at": fired_at})


def check_approval_timeout(seconds: int) -> int:
    """An approval wait long enough for an operator to answer: at least OPS_APPROVAL_MIN_SECONDS (30 s)."""
    from playground_ops.errors import ConfigError
    from playground_ops.settings import load_settings

    floor = load_settings().approval_min_seconds
    if seconds < floor:
        raise ConfigError("approval_timeout_seconds", f"at least {floor} s (OPS_APPROVAL_MIN_SECONDS)", got=str(seconds))
    return seconds


def wait_for_approval(input_type: type, question: str, timeout_seconds: int, block_name: str):
    """Pause this run for an operator's answer in the Prefect UI, after telling the operators where to give it.
    Returns the answer (an instance of input_type); a timeout raises, so nothing is changed without one."""
    from prefect.flow_runs import pause_flow_run

    from playground_ops.runbook import run_link

    link = run_link() or "the flow run's page in the Prefect UI"
    send_notification(f"[APPROVAL NEEDED] {question}",
                      f"{question}\nApprove or refuse within {timeout_seconds} s at {link} (Resume, then answer).",
                      block_name)
    return pause_flow_run(wait_for_input=input_type, timeout=timeout_seconds)


def refused_in_production(t, report, input_type: type, question: str, timeout_seconds: int, refused: str) -> bool:
    """On a production target, ask an operator in the UI first (input_type's `approve`); True when refused, the
    report then saying so ("refused: nothing changed"). Elsewhere nothing is asked."""
    from tasks.targets import load_ops_settings

    if t.environment != "production":
        return False
    answer = wait_for_approval(input_type, question, timeout_seconds, load_ops_settings().notification_block)
    if answer.approve:
        return False
    report.add("warning", refused)
    report.summary = "refused: nothing changed"
    return True
