"""`playground-ops setup`: the work pool, global concurrency limits, notification block and failure automation.

Idempotent: each piece is looked up by name and updated in place, so running setup twice creates nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from deployments.catalog import runbook_names
from playground_ops.settings import Settings

# Global concurrency limits the runbooks take (strict), so heavy database work never overlaps.
GLOBAL_LIMITS = {
    "playground-ops-backup": 1,          # two backups never run at once
    "playground-ops-database-heavy": 1,  # backup, maintenance and performance review never overlap
}
DIAGNOSTICS_AUTOMATION = "playground-ops: run diagnostics when an alert fires"
LOST_RUN_AUTOMATION = "playground-ops: a run whose heartbeats stopped is Crashed"
RECONCILE_AUTOMATION = "playground-ops: reconcile a run that crashed"
RECONCILE_DEPLOYMENT = "reconcile-crashed-run/reconcile-crashed-run"
INCIDENT_AUTOMATION = "playground-ops: open an incident for a critical alert that keeps firing"
INCIDENT_DEPLOYMENT = "incident/incident"
# every state a runbook run ends in, by event name (the custom names of final_state and skipped included)
FINAL_STATE_NAMES = ("Completed", "Failed", "Cancelled", "Crashed", "TimedOut", "Warning", "Critical", "Skipped")
FAILURE_AUTOMATION = "playground-ops: notify when a runbook fails"
SEV1_ALERTS = ("HealthCheckFailing",)  # alerts that mean the service is down
RUNBOOK_TAG = "playground-ops"
# The state that happened (FAILED, CRASHED, TIMEDOUT) and the target's own name: the run's `target` parameter, else
# the default target's name as `setup` read it.
DEFAULT_TARGET = "<default target>"  # replaced by setup with the default target's name
TARGET_OF_RUN = "{{ flow_run.parameters.get('target') or '" + DEFAULT_TARGET + "' }}"
FAILURE_SUBJECT = "[{{ flow_run.state.name|upper }}] runbook {{ flow.name }} on " + TARGET_OF_RUN
FAILURE_BODY = """Runbook {{ flow.name }} ended {{ flow_run.state.name }}.
Deployment: {% if deployment %}{{ deployment.name }}{% else %}(run by hand){% endif %}
Target: """ + TARGET_OF_RUN + """
Message: {{ flow_run.state.message }}
Run: {{ flow_run|ui_url }}"""


def default_target_name(settings: Settings) -> str:
    """The default target's name, for messages about runs that did not name one."""
    from playground_ops.settings import load_targets

    try:
        return load_targets(settings)[1]
    except Exception:  # no target configured where setup runs: said plainly
        return "the default target"


@dataclass
class SetupResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def pool_env(workers: int, heartbeat_seconds: int) -> dict[str, str]:
    """What every run a worker of the pool starts gets: heartbeats (OPS_HEARTBEAT_SECONDS), and how many workers
    share the pool."""
    return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat_seconds), "OPS_WORKERS": str(workers)}


def pool_job_template(workers: int, heartbeat_seconds: int) -> dict:
    """The process pool's job template with pool_env in every run; a run's output is not streamed through the worker,
    so a worker that exits (or is killed) never takes a run that is still working down with it."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["env"]["default"] = pool_env(workers, heartbeat_seconds)
    template["variables"]["properties"]["stream_output"]["default"] = False
    return template


def ensure_work_pool(name: str, result: SetupResult, workers: int, heartbeat_seconds: int) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    template = pool_job_template(workers, heartbeat_seconds)
    what = f"work pool {name} (runs send heartbeats every {heartbeat_seconds} s; {workers} worker(s))"
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            result.created.append(what)
            return
        if pool.base_job_template == template:
            result.unchanged.append(what)
        else:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
            result.updated.append(what)


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


def ensure_failure_automation(block_id, result: SetupResult, default_target: str = "the default target") -> None:
    """One notification whenever a runbook's flow run becomes Failed, Crashed or TimedOut."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    if block_id is None:
        result.skipped.append("failure automation: NO ONE WILL BE NOTIFIED when a runbook fails or crashes "
                              "(set OPS_WEBHOOK_URL or OPS_SLACK_WEBHOOK_URL and run setup again)")
        return
    trigger = EventTrigger(
        expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        # by the flow's name, so a runbook run outside a deployment (no tags) is notified too
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": runbook_names()},
        posture=Posture.Reactive, threshold=1)
    name = default_target.replace("'", "")  # inside a quoted template string
    action = SendNotification(block_document_id=block_id, subject=FAILURE_SUBJECT.replace(DEFAULT_TARGET, name),
                              body=FAILURE_BODY.replace(DEFAULT_TARGET, name))
    _upsert_automation(FAILURE_AUTOMATION, "Sends one notification for each playground-ops runbook run that fails, "
                                           "crashes or times out.", trigger, action, result)


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


def ensure_lost_run_automation(lost_after_seconds: int, result: SetupResult) -> None:
    """Prefect's "detect zombie flows" automation: a run whose heartbeats stop for OPS_LOST_RUN_SECONDS without an
    event of a final state (its process or its host is gone) becomes Crashed, which the failure automation
    notifies and which frees its deployment's concurrency slot."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    heartbeat = "prefect.flow-run.heartbeat"
    trigger = EventTrigger(
        after={heartbeat}, expect={heartbeat, *(f"prefect.flow-run.{name}" for name in FINAL_STATE_NAMES)},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        # a runbook's deployment runs only: they beat every OPS_HEARTBEAT_SECONDS (the pool's template, serve); a run
        # started in a Python process of its own beats at Prefect's default 180 s and is left alone
        match_related=[{"prefect.resource.role": "flow", "prefect.resource.name": runbook_names()},
                       {"prefect.resource.role": "deployment"}],
        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
        within=timedelta(seconds=lost_after_seconds))
    action = ChangeFlowRunState(state=StateType.CRASHED, message=(
        f"lost: no heartbeat for {lost_after_seconds} s (the run's process or its host is gone)"))
    _upsert_automation(LOST_RUN_AUTOMATION, "Marks a runbook run Crashed when its heartbeats stop: its worker, "
                                            "process or host was lost.", trigger, action, result)


def _registered(deployment: str, automation: str, result: SetupResult):
    """The deployment an automation names, or None (the automation skipped, saying why) while it is not registered."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            result.skipped.append(f"automation {automation!r}: the {deployment} deployment is not registered yet "
                                  "(run setup again after `prefect deploy --all`; `serve` does it itself)")
            return None


def ensure_reconcile_automation(result: SetupResult) -> bool:
    """Start reconcile-crashed-run for every runbook run that becomes Crashed (its failed report, its leftovers
    removed at once). It names the reconcile's deployment, so it is made once that deployment is registered."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    deployment = _registered(RECONCILE_DEPLOYMENT, RECONCILE_AUTOMATION, result)
    if deployment is None:
        return False
    watched = [name for name in runbook_names() if name != "reconcile-crashed-run"]
    trigger = EventTrigger(expect={"prefect.flow-run.Crashed"}, match={"prefect.resource.id": "prefect.flow-run.*"},
                           match_related={"prefect.resource.role": "flow", "prefect.resource.name": watched},
                           posture=Posture.Reactive, threshold=1)
    action = RunDeployment(source="selected", deployment_id=deployment.id,
                           parameters={"flow_run_id": "{{ flow_run.id | string }}"})
    _upsert_automation(RECONCILE_AUTOMATION, "Runs reconcile-crashed-run for a runbook run that Crashed: its failed "
                                             "report is stored and what it left half done is removed.",
                       trigger, action, result)
    return True


def ensure_diagnostics_automation(result: SetupResult) -> None:
    """Start the diagnostics runbook an alert names as soon as the health check reports it firing (an event names
    the runbook's deployment; nothing polls)."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    # only an alert that names a diagnostics runbook: the event also carries the run's own deployment (Prefect adds
    # the run's context), which must never be started again by its own alert
    diagnostics = [name for name in runbook_names() if name.startswith("diagnose-")]
    trigger = EventTrigger(expect={"playground-ops.alert.firing"},
                           match={"prefect.resource.id": "playground-ops.alert.*", "playground-ops.diagnostics": diagnostics},
                           match_related={"prefect.resource.role": "deployment", "prefect.resource.name": diagnostics},
                           posture=Posture.Reactive, threshold=1)
    action = RunDeployment(source="inferred", parameters={"target": "{{ event.resource['playground-ops.target'] }}"})
    _upsert_automation(DIAGNOSTICS_AUTOMATION, "Runs the diagnostics runbook named by an alert (HighCpu, HighMemory, "
                                               "...) when it begins firing.", trigger, action, result)


def ensure_incident_automation(settings: Settings, result: SetupResult) -> bool:
    """With OPS_INCIDENT_AFTER, start the incident runbook when a critical alert has fired that long (the health
    check emits playground-ops.incident.due once per firing); without it, no such automation (removed if there
    was one). It names the incident's deployment, so it is made once that deployment is registered."""
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    if settings.incident_after is None:
        try:
            Automation.read(name=INCIDENT_AUTOMATION).delete()
            result.updated.append(f"automation {INCIDENT_AUTOMATION!r} removed (OPS_INCIDENT_AFTER is not set)")
        except ValueError:
            pass
        return True
    deployment = _registered(INCIDENT_DEPLOYMENT, INCIDENT_AUTOMATION, result)
    if deployment is None:
        return False
    trigger = EventTrigger(expect={"playground-ops.incident.due"}, match={"prefect.resource.id": "playground-ops.alert.*"},
                           posture=Posture.Reactive, threshold=1)
    action = RunDeployment(source="selected", deployment_id=deployment.id, parameters={
        "target": "{{ event.resource['playground-ops.target'] }}", "alert": "{{ event.resource['prefect.resource.name'] }}",
        # the service down (its health check failing) is sev1, as the incident runbook's own words have it
        "severity": "{% if event.resource['prefect.resource.name'] in " + repr(list(SEV1_ALERTS)) + " %}sev1"
                    "{% else %}sev2{% endif %}",
        "summary": f"critical alert {{{{ event.resource['prefect.resource.name'] }}}} firing for "
                                       f"{settings.incident_after} or more"})
    _upsert_automation(INCIDENT_AUTOMATION, f"Opens an incident when a critical alert has fired for "
                                            f"{settings.incident_after} (OPS_INCIDENT_AFTER).", trigger, action, result)
    return True


def setup(settings: Settings) -> SetupResult:
    settings.check_shared_stores()  # several workers (OPS_WORKERS or --workers): every store must be shared
    result = SetupResult()
    ensure_work_pool(settings.work_pool, result, settings.workers, settings.heartbeat_seconds)
    ensure_global_limits(result)
    block_id = ensure_notification_block(settings, result)
    ensure_failure_automation(block_id, result, default_target_name(settings))
    ensure_lost_run_automation(settings.lost_run_seconds, result)
    ensure_reconcile_automation(result)
    ensure_diagnostics_automation(result)
    ensure_incident_automation(settings, result)
    return result
