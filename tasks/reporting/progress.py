"""Progress bars in the Prefect UI for runbooks that work through a list."""

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.retry import retrying


@task(**retrying(retries=2, timeout_seconds=30))
def start_progress(key: str, total: int) -> str:
    """A progress artifact at 0%."""
    return str(create_progress_artifact(0.0, description=f"{key}: 0 of {total}"))


@task(**retrying(retries=2, timeout_seconds=30))
def show_progress(artifact_id: str, done: int, total: int, current: str) -> None:
    """Move the progress artifact on."""
    from uuid import UUID

    update_progress_artifact(UUID(artifact_id), 100.0 * done / max(total, 1), description=f"{done} of {total}: {current}")
