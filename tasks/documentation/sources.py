"""What documentation-review reads: the repository's Markdown, the names (never the values) of the service's
environment variables, and the endpoints the backend served, from its requests table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema, Platform
from tasks.database.postgres import connect
from tasks.platform.render_platform import client_for
from tasks.retry import retrying


def check_doc_paths(paths: list[str]) -> list[str]:
    """The documentation paths as given, each a relative path inside the repository; one clear error otherwise."""
    for path in paths:
        parts = PurePosixPath(path).parts
        if not path or path.startswith(("/", "~")) or ".." in parts or "\\" in path:
            raise ValueError(f"docs: expected paths inside the repository such as README.md or docs (got {path!r})")
    return paths


@task(**retrying(retries=0, timeout_seconds=60))
def read_doc_files(repository: Path, paths: list[str]) -> dict[str, str]:
    """Every Markdown file at or under the given paths of the work copy (path -> text); a path that is not there
    is simply not read (the report lists what was)."""
    root = repository.resolve()
    files = {}
    for path in check_doc_paths(paths):
        where = (root / path).resolve()
        if not where.is_relative_to(root):
            continue  # a symlink out of the repository
        found = [where] if where.is_file() else sorted(where.rglob("*.md")) if where.is_dir() else []
        for file in found:
            if file.suffix.lower() == ".md" and file.resolve().is_relative_to(root):
                files[str(file.relative_to(root))] = file.read_text(errors="replace")
    return files


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def read_env_var_names(platform: Platform) -> set[str]:
    """The names of the service's environment variables; their values never leave this task."""
    return set(client_for(platform).list_env_vars(platform.service_id))


@task(**retrying(retries=2, backoff=1, timeout_seconds=120))
def read_served_endpoints(database_url: SecretStr, schema: AppSchema, days: int = 30) -> dict[str, int]:
    """Requests per endpoint over the last days, from the application's requests table (one indexed scan)."""
    query = sql.SQL("SELECT {endpoint}, count(*) FROM {requests} WHERE {created_at} >= %s GROUP BY 1").format(
        endpoint=sql.Identifier(schema.endpoint), created_at=sql.Identifier(schema.created_at),
        requests=sql.Identifier(*schema.requests.split(".")))
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '60s'")
        rows = conn.execute(query, (datetime.now(timezone.utc) - timedelta(days=days),)).fetchall()
    return {endpoint: count for endpoint, count in rows if endpoint}
