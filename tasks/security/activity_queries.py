"""Who is trying to get in or abusing the playground, measured in the database (aggregates only), and the accounts,
roles and privileges the access review reads. Each access-review section is read on its own, so one the role may not
read is named rather than fatal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from psycopg import sql
from pydantic import SecretStr

from playground_ops.settings import AppSchema
from tasks.database.postgres import app_names, connect, rows_as_dicts
from tasks.retry import retrying


def failed_auth_query(schema: AppSchema) -> sql.Composed:
    """401s of the range: per IP and per user, and each IP's busiest window of `window_minutes` (fail2ban's findtime)."""
    return sql.SQL("""
WITH f AS (
    SELECT date_trunc('minute', {created_at}) AS minute, coalesce(host({ip}), 'unknown') AS ip, {user_id} AS user_id,
           count(*) AS n
    FROM {requests} WHERE {created_at} >= %(start)s AND {created_at} < %(end)s AND {status} = 401
    GROUP BY 1, 2, 3),
per_ip AS (SELECT ip, minute, sum(n) AS n FROM f GROUP BY 1, 2),
windows AS (SELECT ip, minute, sum(n) OVER (PARTITION BY ip ORDER BY minute
                 RANGE BETWEEN %(window)s::interval PRECEDING AND CURRENT ROW) AS in_window FROM per_ip)
SELECT json_build_object(
  'total', (SELECT coalesce(sum(n), 0) FROM f),
  'ips', (SELECT count(DISTINCT ip) FROM f),
  'by_ip', (SELECT coalesce(json_agg(t ORDER BY failures DESC, ip), '[]') FROM (
      SELECT ip, sum(n) AS failures, count(DISTINCT user_id) AS users, min(minute) AS first, max(minute) AS last
      FROM f GROUP BY ip ORDER BY failures DESC, ip LIMIT 20) t),
  'by_user', (SELECT coalesce(json_agg(t ORDER BY failures DESC, user_id), '[]') FROM (
      SELECT user_id, sum(n) AS failures, count(DISTINCT ip) AS ips FROM f GROUP BY user_id
      ORDER BY failures DESC, user_id LIMIT 20) t),
  'bursts', (SELECT coalesce(json_agg(t ORDER BY peak DESC, ip), '[]') FROM (
      SELECT ip, max(in_window) AS peak, min(minute) FILTER (WHERE in_window > %(max_failures)s) AS first_over
      FROM windows GROUP BY ip HAVING max(in_window) > %(max_failures)s) t)
) AS failed_auth
""").format(**app_names(schema))


def request_rates_query(schema: AppSchema) -> sql.Composed:
    """Requests per user and per IP per hour, the range against the weeks before it: each one's busiest hour now and
    before, the endpoint it hit most in that hour, the top talkers, and the hours with a burst of quota refusals."""
    return sql.SQL("""
WITH h AS MATERIALIZED (
    SELECT {user_id} AS user_id, coalesce(host({ip}), 'unknown') AS ip, {endpoint} AS endpoint,
           date_trunc('hour', {created_at}) AS hour, {created_at} >= %(start)s AS current, count(*) AS n,
           count(*) FILTER (WHERE {status} = 429 AND {error_type} = 'quota_exceeded') AS refused
    FROM {requests} WHERE {created_at} >= %(baseline)s AND {created_at} < %(end)s
    GROUP BY 1, 2, 3, 4, 5),
per_user AS (SELECT user_id, hour, current, sum(n) AS n, sum(refused) AS refused,
                    (array_agg(endpoint ORDER BY n DESC))[1] AS endpoint FROM h GROUP BY 1, 2, 3),
per_ip AS (SELECT ip, hour, current, sum(n) AS n, (array_agg(endpoint ORDER BY n DESC))[1] AS endpoint
           FROM h GROUP BY 1, 2, 3),
user_peaks AS (SELECT user_id, sum(n) FILTER (WHERE current) AS requests,
                      max(n) FILTER (WHERE current) AS peak, max(n) FILTER (WHERE NOT current) AS before,
                      (array_agg(hour ORDER BY n DESC) FILTER (WHERE current))[1] AS peak_hour,
                      (array_agg(endpoint ORDER BY n DESC) FILTER (WHERE current))[1] AS endpoint
               FROM per_user GROUP BY user_id),
ip_peaks AS (SELECT ip, sum(n) FILTER (WHERE current) AS requests,
                    max(n) FILTER (WHERE current) AS peak, max(n) FILTER (WHERE NOT current) AS before,
                    (array_agg(hour ORDER BY n DESC) FILTER (WHERE current))[1] AS peak_hour,
                    (array_agg(endpoint ORDER BY n DESC) FILTER (WHERE current))[1] AS endpoint
             FROM per_ip GROUP BY ip)
SELECT json_build_object(
  'users', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT * FROM user_peaks
            WHERE peak >= %(min_rate)s AND peak >= %(factor)s * coalesce(before, 0) ORDER BY peak DESC LIMIT 50) t),
  'ips', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT * FROM ip_peaks
          WHERE peak >= %(min_rate)s AND peak >= %(factor)s * coalesce(before, 0) ORDER BY peak DESC LIMIT 50) t),
  'top_users', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT user_id, requests, peak, before FROM user_peaks
                WHERE requests > 0 ORDER BY requests DESC, user_id LIMIT 10) t),
  'top_ips', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT ip, requests, peak, before FROM ip_peaks
              WHERE requests > 0 ORDER BY requests DESC, ip LIMIT 10) t),
  'refusal_bursts', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT user_id, hour, refused FROM per_user
                     WHERE current AND refused >= %(refusal_burst)s ORDER BY refused DESC LIMIT 50) t)
) AS rates
""").format(**app_names(schema))


def access_sections(schema: AppSchema, inactive_days: int) -> dict[str, sql.Composed]:
    """The access review's sections, each one query: the accounts, the database's roles and what PUBLIC may do."""
    n = app_names(schema)
    days = sql.Literal(f"{int(inactive_days)} days")
    return {
        "inactive accounts": sql.SQL("""
SELECT {id} AS user_id, {email} AS email, {role} AS role, last_login_at, {created_at} AS created_at
FROM {users} WHERE disabled_at IS NULL AND coalesce(last_login_at, {created_at}) < now() - {days}::interval
ORDER BY {role} = 'user', coalesce(last_login_at, {created_at}), {id} LIMIT 500""").format(days=days, **n),
        "privileged accounts": sql.SQL("""
SELECT {id} AS user_id, {email} AS email, {role} AS role, last_login_at, disabled_at,
       disabled_at IS NULL AND coalesce(last_login_at, {created_at}) < now() - {days}::interval AS inactive
FROM {users} WHERE {role} IN ('admin', 'service') ORDER BY {role}, {id}""").format(days=days, **n),
        "database roles": sql.SQL("""
SELECT rolname AS role, rolcanlogin AS can_login, rolsuper AS superuser, rolcreaterole AS create_role,
       rolcreatedb AS create_db, rolbypassrls AS bypass_rls, rolreplication AS replication,
       rolvaliduntil AS password_valid_until
FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname"""),
        "public schema": sql.SQL("""
SELECT has_schema_privilege('public', 'public', 'CREATE') AS public_can_create,
       has_database_privilege('public', current_database(), 'CREATE') AS public_can_create_schemas"""),
        "passwords": sql.SQL("""
SELECT rolname AS role, rolpassword IS NULL AS no_password,
       coalesce(rolpassword LIKE 'SCRAM-SHA-256$%%', false) AS scram
FROM pg_authid WHERE rolcanlogin ORDER BY rolname"""),
    }


@task(**retrying(retries=2, backoff=2, timeout_seconds=None))
def read_activity(database_url: SecretStr, schema: AppSchema, start: datetime, end: datetime, baseline: datetime,
                  thresholds: dict[str, Any]) -> dict[str, Any]:
    """Failed authentication and request rates of the range, in one read-only snapshot; a missing table is named."""
    import psycopg

    params = {"start": start, "end": end, "baseline": baseline, **thresholds,
              "window": f"{int(thresholds['window_minutes']) - 1} minutes"}
    with connect(database_url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            failed = conn.execute(failed_auth_query(schema), params).fetchone()[0]
            rates = conn.execute(request_rates_query(schema), params).fetchone()[0]
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
                psycopg.errors.InsufficientPrivilege) as exc:
            return {"missing": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        conn.execute("COMMIT")
    return {"failed_auth": failed, "rates": rates}


@task(**retrying(retries=2, backoff=2, timeout_seconds=300))
def read_access(database_url: SecretStr, schema: AppSchema, inactive_days: int) -> dict[str, dict[str, Any]]:
    """Each access-review section: {"rows": [...]} or {"error": why it could not be read}."""
    import psycopg

    out: dict[str, dict[str, Any]] = {}
    with connect(database_url) as conn:
        for name, query in access_sections(schema, inactive_days).items():
            try:
                with conn.transaction():
                    out[name] = {"rows": rows_as_dicts(conn.execute(query))}
            except psycopg.Error as exc:
                out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return out


@task(**retrying(retries=0, timeout_seconds=120))
def disable_accounts(database_url: SecretStr, schema: AppSchema, user_ids: list[int], inactive_days: int) -> list[int]:
    """Disable exactly the listed accounts, each only if the rule still holds for it now (not disabled, no login in
    `inactive_days`); the ids disabled. Safe to repeat: a disabled account is not disabled again."""
    n = app_names(schema)
    query = sql.SQL("""
UPDATE {users} SET disabled_at = now()
WHERE {id} = ANY(%(ids)s) AND disabled_at IS NULL
  AND coalesce(last_login_at, {created_at}) < now() - {days}::interval
RETURNING {id}""").format(days=sql.Literal(f"{int(inactive_days)} days"), **n)
    with connect(database_url) as conn:
        return sorted(row[0] for row in conn.execute(query, {"ids": user_ids}).fetchall())


def source_activity_query(schema: AppSchema, kind: str) -> sql.Composed:
    """One source's requests in the window: per hour by status, the accounts (or addresses) involved, first and last,
    the accounts answered after a failure (an address), and its requests in the quiet window."""
    n = app_names(schema)
    match = (sql.SQL("{ip} = %(source)s::inet") if kind == "brute-force"
             else sql.SQL("{user_id} = %(source)s::bigint")).format(**n)
    recent = sql.SQL("AND {status} = 401").format(**n) if kind == "brute-force" else sql.SQL("")
    disabled = (sql.SQL("NULL") if kind == "brute-force" else
                sql.SQL("(SELECT disabled_at IS NOT NULL FROM {users} WHERE {id} = %(source)s::bigint)").format(**n))
    return sql.SQL("""
WITH r AS (SELECT {created_at} AS at, {status} AS status, {user_id} AS user_id, coalesce(host({ip}), 'unknown') AS ip,
                  {endpoint} AS endpoint
           FROM {requests} WHERE {match} AND {created_at} >= %(since)s),
first_failure AS (SELECT min(at) AS at FROM r WHERE status = 401)
SELECT json_build_object(
  'requests', (SELECT count(*) FROM r),
  'failures', (SELECT count(*) FROM r WHERE status = 401),
  'first', (SELECT min(at) FROM r), 'last', (SELECT max(at) FROM r),
  'accounts', (SELECT coalesce(json_agg(DISTINCT user_id), '[]') FROM r WHERE user_id IS NOT NULL),
  'addresses', (SELECT coalesce(json_agg(DISTINCT ip), '[]') FROM r),
  'endpoints', (SELECT coalesce(json_agg(t), '[]') FROM (SELECT endpoint, count(*) AS requests FROM r
                GROUP BY 1 ORDER BY 2 DESC LIMIT 10) t),
  'hours', (SELECT coalesce(json_agg(t ORDER BY hour), '[]') FROM (SELECT date_trunc('hour', at) AS hour, count(*) AS
            requests, count(*) FILTER (WHERE status = 401) AS failures FROM r GROUP BY 1) t),
  'signed_in_after_failures', (SELECT coalesce(json_agg(DISTINCT user_id), '[]') FROM r, first_failure
            WHERE status < 400 AND user_id IS NOT NULL AND r.at > first_failure.at),
  'recent', (SELECT count(*) FROM {requests} WHERE {match} {recent}
             AND {created_at} >= now() - %(quiet)s::interval),
  'disabled', {disabled}
) AS activity""").format(match=match, recent=recent, disabled=disabled, **n)


@task(**retrying(retries=2, backoff=2, timeout_seconds=120))
def read_source_activity(database_url: SecretStr, schema: AppSchema, kind: str, source: str, since: datetime,
                         quiet_minutes: int) -> dict[str, Any]:
    """What one source (an address, or an account) did since `since`, as the security incident's evidence."""
    with connect(database_url) as conn:
        return conn.execute(source_activity_query(schema, kind), {"source": source, "since": since,
                                                                   "quiet": f"{int(quiet_minutes)} minutes"}
                            ).fetchone()[0]


@task(**retrying(retries=0, timeout_seconds=120))
def disable_users(database_url: SecretStr, schema: AppSchema, user_ids: list[int]) -> list[int]:
    """Disable exactly the listed accounts (an operator approved them); the ids disabled now. Safe to repeat: an
    account already disabled is not disabled again."""
    query = sql.SQL("UPDATE {users} SET disabled_at = now() WHERE {id} = ANY(%(ids)s) AND disabled_at IS NULL "
                    "RETURNING {id}").format(**app_names(schema))
    with connect(database_url) as conn:
        return sorted(row[0] for row in conn.execute(query, {"ids": user_ids}).fetchall())
