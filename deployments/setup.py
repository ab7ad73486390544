"""`playground-ops setup`: the work pool, global concurrency limits, notification block and failure automation.

Idempotent: each piece is looked up by name and updated in place, so running setup twice creates nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playground_ops.settings import Settings

# Global concurrency limits the runbooks take (strict), so heavy database work never overlaps.
GLOBAL_LIMITS = {
    "playground-ops-backup": 1,          # two backups never run at once
    "playground-ops-database-heavy": 1,  # backup, maintenance and performance review never overlap
}
DIAGNOSTICS_AUTOMATION = "playground-ops: run diagnostics when an alert fires"
FAILURE_AUTOMATION = "playground-ops: notify when a runbook fails"
RUNBOOK_TAG = "playground-ops"
FAILURE_SUBJECT = "[FAILED] runbook {{ flow.name }} on {{ flow_run.parameters.get('target') or 'the default target' }}"
FAILURE_BODY = """Runbook {{ flow.name }} ended {{ flow_run.state.name }}.
Deployment: {% if deployment %}{{ deployment.name }}{% else %}(run by hand){% endif %}
Target: {{ flow_run.parameters.get('target') or 'the default target' }}
Message: {{ flow_run.state.message }}
Run: {{ flow_run|ui_url }}"""


@dataclass
class SetupResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ensure_work_pool(name: str, result: SetupResult) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            result.unchanged.append(f"work pool {name}")
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            result.created.append(f"work pool {name}")


def ensure_global_limits(result: SetupResult) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, limit in GLOBAL_LIMITS.items():
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
                result.created.append(f"concurrency limit {name}={limit}")
                continue
            if existing.limit != limit or not existing.active:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
                result.updated.append(f"concurrency limit {name}={limit}")
            else:
                result.unchanged.append(f"concurrency limit {name}={limit}")


def ensure_notification_block(settings: Settings, result: SetupResult):
    """The notification block, from OPS_WEBHOOK_URL (generic JSON webhook) or OPS_SLACK_WEBHOOK_URL."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    from tasks.reporting.notify import load_notification_block

    name = settings.notification_block
    if settings.webhook_url is not None:
        # The URL (and any token in it) lives only in the block's encrypted secrets, never in plain fields.
        block = CustomWebhookNotificationBlock(
            name="playground-ops", url="{{webhook_url}}", method="POST",
            json_data={"subject": "{{subject}}", "body": "{{body}}", "source": "playground-ops"},
            secrets={"webhook_url": settings.webhook_url.get_secret_value()})
    elif settings.slack_webhook_url is not None:
        block = SlackWebhook(url=settings.slack_webhook_url)
    else:
        result.skipped.append("notification block (set OPS_WEBHOOK_URL or OPS_SLACK_WEBHOOK_URL)")
        return None
    existed = load_notification_block(name) is not None
    block_id = block.save(name, overwrite=True)
    (result.updated if existed else result.created).append(f"notification block {name}")
    return block_id


def ensure_failure_automation(block_id, result: SetupResult) -> None:
    """One notification whenever a runbook's flow run becomes Failed, Crashed or TimedOut."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    if block_id is None:
        result.skipped.append("failure automation (no notification block)")
        return
    trigger = EventTrigger(
        expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        # by the flow's name, so a runbook run outside a deployment (no tags) is notified too
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": runbook_names()},
        posture=Posture.Reactive, threshold=1)
    action = SendNotification(block_document_id=block_id, subject=FAILURE_SUBJECT, body=FAILURE_BODY)
    _upsert_automation(FAILURE_AUTOMATION, "Sends one notification for each playground-ops runbook run that fails, "
                                           "crashes or times out.", trigger, action, result)


def runbook_names() -> list[str]:
    """The flow names of every runbook in prefect.yaml (each deployment is named after its runbook's flow)."""
    from deployments.catalog import load_catalog

    return sorted(spec.flow_name for spec in load_catalog().values())


def _upsert_automation(name: str, description: str, trigger, action, result: SetupResult) -> None:
    """Create the automation, or bring an existing one of that name back to this definition (and enable it)."""
    from prefect.automations import Automation

    try:
        existing = Automation.read(name=name)
    except ValueError:
        Automation(name=name, description=description, trigger=trigger, actions=[action]).create()
        result.created.append(f"automation {name!r}")
        return
    existing.trigger, existing.actions, existing.description, existing.enabled = trigger, [action], description, True
    existing.update()
    result.updated.append(f"automation {name!r}")


def ensure_diagnostics_automation(result: SetupResult) -> None:
    """Start the diagnostics runbook an alert names as soon as the health check reports it firing (an event names
    the runbook's deployment; nothing polls)."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    trigger = EventTrigger(expect={"playground-ops.alert.firing"}, match={"prefect.resource.id": "playground-ops.alert.*"},
                           match_related={"prefect.resource.role": "deployment"}, posture=Posture.Reactive, threshold=1)
    action = RunDeployment(source="inferred", parameters={"target": "{{ event.resource['playground-ops.target'] }}"})
    _upsert_automation(DIAGNOSTICS_AUTOMATION, "Runs the diagnostics runbook named by an alert (HighCpu, HighMemory, "
                                               "...) when it begins firing.", trigger, action, result)


def setup(settings: Settings) -> SetupResult:
    result = SetupResult()
    ensure_work_pool(settings.work_pool, result)
    ensure_global_limits(result)
    block_id = ensure_notification_block(settings, result)
    ensure_failure_automation(block_id, result)
    ensure_diagnostics_automation(result)
    return result
