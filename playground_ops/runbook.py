"""The @runbook decorator: a Prefect flow that always leaves a report, even when it fails."""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from prefect import flow

from playground_ops.redact import install_log_redaction, redact

F = TypeVar("F", bound=Callable[..., Any])


RUN_STARTED: ContextVar[datetime | None] = ContextVar("RUN_STARTED", default=None)
# What this run has published: `publish` appends to the list (the same object in every task's copied context).
RUN_REPORTS: ContextVar[list | None] = ContextVar("RUN_REPORTS", default=None)


class RunbookFailed(Exception):
    """A runbook could not do its job; the message names why, with every secret blanked."""


class FindingsFailRun(Exception):
    """The runbook published its report and must now end Failed (so operators are notified): nothing more to report."""


def fail_run(report: Any, message: str) -> NoReturn:
    """Mark the report failed with message, publish it, and end the run Failed saying the same."""
    from tasks.reporting.publish import publish  # at call time: importing this module reads no settings

    report.fail(message)
    publish(report)
    raise FindingsFailRun(message)


def run_link() -> str | None:
    """This flow run's page in the Prefect UI (PREFECT_UI_URL/runs/flow-run/<id>), or None without a UI URL."""
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None


def runbook(name: str, request_check: Callable[[dict[str, Any], Any], None] | None = None,
            **flow_options: Any) -> Callable[[F], F]:
    """Declare a runbook: a flow named after the guide's procedure whose failures are reported and stored, then raised.

    request_check(parameters, target): the runbook's checks of a whole request that need its target's declarations
    but no I/O (keys a target declares, its instance bounds, its services); the CLI runs it before a run exists, and
    the runbook runs it again once it has loaded its target."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            install_log_redaction()
            published: list = []
            tokens = (RUN_STARTED.set(datetime.now(timezone.utc)), RUN_REPORTS.set(published))
            try:
                check_arguments(fn, args, kwargs)
                outcome = final_state(fn(*args, **kwargs))
            except FindingsFailRun as exc:
                stop_if_already_final()
                if not any(r.runbook == name for r in published):  # failing before its report: store one now
                    _publish_failure(name, _target_of(fn, args, kwargs), exc)
                raise RunbookFailed(redact(str(exc))) from None
            except Exception as exc:
                stop_if_already_final()
                _publish_failure(name, _target_of(fn, args, kwargs), exc)
                raise RunbookFailed(f"{type(exc).__name__}: {redact(str(exc))}") from None
            else:
                stop_if_already_final()
                return outcome
            finally:  # a subflow's runbook gives its caller back the caller's own start time and reports
                for var, token in zip((RUN_STARTED, RUN_REPORTS), tokens):
                    try:
                        var.reset(token)
                    except ValueError:  # already in another context: nothing of the caller's to restore
                        pass

        declared = flow(name=name, log_prints=True, **flow_options)(run)
        declared.request_check = request_check  # read by DeploymentSpec.check_parameters
        return declared  # type: ignore[return-value]

    return decorate


def stop_if_already_final() -> None:
    """Before a run sets its own end: when the server already holds a final state for it that another set (the lost-run automation
    declared it Crashed while its process or host was frozen, then it woke up), end quietly without a state of its own,
    so that state stays final and its one notification is the only one. Prefect's server would accept a Failed or
    Completed proposed over Crashed; Abort makes the engine propose nothing."""
    from prefect.client.schemas.objects import StateType
    from prefect.context import FlowRunContext
    from prefect.exceptions import Abort

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            state = client.read_flow_run(context.flow_run.id).state
    except Exception:  # the API unreachable: the engine's own proposal decides
        return
    # Crashed (declared lost) or Cancelled by someone else: final for good. A Failed the server sets on a pause that
    # timed out is not: the run goes on and reports it.
    if state is not None and state.type in (StateType.CRASHED, StateType.CANCELLED):
        raise Abort(f"this run is already {state.name} ({state.message or 'set while it ran'}): its end is kept")


def check_arguments(fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """The runbook's own checks that need no I/O (`Checked` in a parameter's annotation), on this call's arguments,
    before its first step: the same rules the CLI applies before a run exists, for runs started from the UI."""
    from playground_ops.errors import Checked

    signature = inspect.signature(fn)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    for name, value in bound.arguments.items():
        Checked.run_all(signature.parameters[name].annotation, value)


def scheduled_at(interval_s: float = 300) -> datetime:
    """The time this run counts as: its scheduled start (see alert_rules.check_time), or now."""
    from prefect.runtime import flow_run

    from tasks.monitoring.alert_rules import check_time

    scheduled = flow_run.scheduled_start_time
    if scheduled is not None and not isinstance(scheduled, datetime):
        scheduled = datetime.fromisoformat(str(scheduled))
    if scheduled is not None and scheduled.tzinfo is None:
        scheduled = scheduled.replace(tzinfo=timezone.utc)
    return check_time(scheduled, datetime.now(timezone.utc), interval_s)


def final_state(result: Any) -> Any:
    """What a run found, on its final state: a report that is `warning` or `critical` ends the run Completed under
    that name, with the report's summary as the state's message, so the runs list shows it without opening it."""
    from prefect.states import Completed, State

    from tasks.reporting.report import Report

    if isinstance(result, State) or not isinstance(result, Report):
        return result
    if result.status.value in ("warning", "critical"):
        return Completed(name=result.status.value.title(), message=redact(result.summary or "")[:500], data=result)
    return result


def skipped(report: Any, why: str) -> Any:
    """End a run that had nothing to do: Completed under the name Skipped, saying why."""
    from prefect.states import Completed

    return Completed(name="Skipped", message=redact(why)[:500], data=report)


def _target_of(fn: Callable[..., Any], args: tuple, kwargs: dict) -> str | None:
    try:
        return inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get("target")
    except TypeError:
        return None


def _publish_failure(runbook_name: str, target: str | None, exc: Exception) -> None:
    from tasks.reporting.publish import artifact_key, publish
    from tasks.reporting.report import Report

    from playground_ops.settings import get_target

    try:
        label = get_target(target).name
    except Exception:
        label = artifact_key(target or "unknown") or "unknown"
    report = Report(runbook=runbook_name, target=label)
    report.fail(f"The run failed: {redact(str(exc)) or type(exc).__name__}", error=type(exc).__name__)
    try:
        publish(report)
    except Exception:  # the original failure matters more than the report of it
        pass
