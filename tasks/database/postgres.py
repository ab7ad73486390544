"""Everything the runbooks ask PostgreSQL."""

from __future__ import annotations

import re
import time

import psycopg
from prefect import task
from pydantic import SecretStr

from tasks.monitoring.probes import Probe
from tasks.retry import retrying

APPLICATION_NAME = "playground-ops"


def connect(database_url: SecretStr | str, autocommit: bool = True, timeout: int = 5) -> psycopg.Connection:
    """A connection labelled playground-ops in pg_stat_activity, so operators can tell it from the app's."""
    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout, application_name=APPLICATION_NAME)


# Submitted probes run in worker threads, where Prefect cannot interrupt them: the client's own timeouts bound them.
@task(**retrying(retries=2, backoff=0.5, timeout_seconds=None))
def probe_database(database_url: SecretStr) -> Probe:
    """Connect, SELECT 1, and read the server version and connections in use against max_connections."""
    start = time.perf_counter()
    with connect(database_url) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("SELECT 1").fetchone()
        latency = round((time.perf_counter() - start) * 1000, 1)
        version, in_use, max_conn, reserved = conn.execute(
            """SELECT current_setting('server_version'),
                      (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                      current_setting('max_connections')::int,
                      current_setting('superuser_reserved_connections')::int""").fetchone()
    return Probe(component="database", ok=True, latency_ms=latency,
                 details={"server_version": version, "connections_in_use": in_use, "max_connections": max_conn,
                          "reserved_connections": reserved})


def server_major(database_url: SecretStr | str) -> tuple[int, str]:
    """The server's major version and full version string."""
    with connect(database_url) as conn:
        num, text = conn.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')").fetchone()
    return num // 10000, text


# Every relation pg_dump writes data for, as it decides (getTables/makeTableDataInfo): tables and partitions, materialized
# views (data only when populated), sequences (their values); not views, foreign or partitioned parents (no data of their
# own), temporary tables, or what an extension owns.
DUMPED_RELATIONS = """
SELECT format('%I.%I', n.nspname, c.relname) AS name, n.nspname, c.relname, c.relkind::text,
       c.relkind <> 'm' OR c.relispopulated AS has_data, pg_table_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'S') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                             AND d.deptype = 'e')
ORDER BY 1
"""
LARGE_OBJECTS = "pg_catalog.pg_largeobject_metadata"  # the large objects' figures, kept beside the tables'


class Snapshot:
    """A REPEATABLE READ transaction that exported its snapshot: pg_dump --snapshot reads exactly what it sees.

    Row counts taken here describe the archive, however much the application writes meanwhile. Keep it open until
    the dump has finished.
    """

    def __init__(self, database_url: SecretStr | str):
        self.conn = connect(database_url, autocommit=False, timeout=10)
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self.conn.execute(HASH_SESSION)
        self.id, self.taken_at = self.conn.execute("SELECT pg_export_snapshot(), now()").fetchone()

    def relations(self) -> list[Relation]:
        """Every relation whose data pg_dump writes, as of the snapshot, with its kind and size."""
        from tasks.backup.policy import Relation

        return [Relation(name=name, schema=schema, relname=rel, kind=kind, has_data=has_data, bytes=size)
                for name, schema, rel, kind, has_data, size in self.conn.execute(DUMPED_RELATIONS).fetchall()]

    def large_objects(self) -> int:
        return self.conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]

    def sequence_values(self, names: list[str]) -> dict[str, int]:
        """Each sequence's last value (a sequence is outside transactions: pg_dump reads it the same way)."""
        return sequence_values(self.conn, names)

    def table_figures(self, tables: list[str]) -> dict[str, tuple[int, str, str]]:
        """Each table's row count and order-independent content hash, as of the snapshot."""
        return {name: content_hash(self.conn, name, "large_objects" if name == LARGE_OBJECTS else None)
                for name in tables}

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def sequence_values(conn: psycopg.Connection, names: list[str]) -> dict[str, int]:
    """last_value of each sequence, or its start value less one step when it was never called (as nextval sees it)."""
    from psycopg import sql

    out = {}
    for name in names:  # names come from format('%I.%I')
        value, called = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name))).fetchone()
        out[name] = value if called else value - 1
    return out


HASH_SESSION = "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET TimeZone = 'UTC'"


# Each live column, in order, with its type's own extended hash function when one takes the column as it is
# (timestamptz through its UTC timestamp, which is lossless); other types are hashed in their text form.
COLUMN_HASHES = """
SELECT a.attname,
       (SELECT p.amproc::regproc::text
          FROM pg_opclass c
          JOIN pg_amproc p ON p.amprocfamily = c.opcfamily AND p.amproclefttype = c.opcintype
                          AND p.amprocrighttype = c.opcintype AND p.amprocnum = 2
          JOIN pg_proc f ON f.oid = p.amproc
         WHERE c.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash') AND c.opcdefault
           AND c.opcintype = coalesce(nullif(t.typbasetype, 0), t.oid)
           AND (f.proargtypes[0] = c.opcintype
                OR (c.opcintype = 'timestamptz'::regtype AND f.proargtypes[0] = 'timestamp'::regtype))),
       coalesce(nullif(t.typbasetype, 0), t.oid) = 'timestamptz'::regtype
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
NULL_MARK = 0x3C6EF372FE94F82B  # a column's hash when it is NULL (plus its position)

# portable_column_hashes: the same figures on every PostgreSQL major from 13 on, so a backup taken on one major is
# checked after a restore onto another. The hash support function a type's opclass names changes between majors
# (date: hashint4extended in 15, hashdateextended in 18; timestamptz, bytea likewise), so the functions are chosen
# here by the column's base type, from those every supported major has; other types are hashed in their text form.
PORTABLE_HASHES = {"smallint": "hashint2extended", "integer": "hashint4extended", "bigint": "hashint8extended",
                   "oid": "hashoidextended", "text": "hashtextextended", "character varying": "hashtextextended",
                   "uuid": "uuid_hash_extended", "timestamp without time zone": "timestamp_hash_extended",
                   "timestamp with time zone": "timestamp_hash_extended", "inet": "hashinetextended",
                   "double precision": "hashfloat8extended", "real": "hashfloat4extended",
                   "numeric": "hash_numeric_extended", "jsonb": "jsonb_hash_extended",
                   "interval": "interval_hash_extended", "time without time zone": "time_hash_extended"}
PORTABLE_COLUMNS = """
SELECT a.attname, format_type(coalesce(nullif(t.typbasetype, 0), t.oid), NULL)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def _row_hash_expression(conn: psycopg.Connection, table: str, method: str):
    """The SQL of one row's 64-bit hash under a method."""
    from psycopg import sql

    if method == "hash_record_extended":  # manifests written before column_hashes
        return sql.SQL("hash_record_extended(t, 0)")
    if method == "hashtextextended":
        return sql.SQL("hashtextextended(t::text, 0)")
    if method == "large_objects":  # t is pg_largeobject_metadata: each object's oid and content
        return sql.SQL("hashtextextended(t.oid::text || ':' || md5(lo_get(t.oid)), 0)")
    if method == "portable_column_hashes":
        columns = [(name, PORTABLE_HASHES.get(base), base == "timestamp with time zone")
                   for name, base in conn.execute(PORTABLE_COLUMNS, (table,)).fetchall()]
    else:  # column_hashes: manifests written before portable_column_hashes, checked on their own major
        columns = conn.execute(COLUMN_HASHES, (table,)).fetchall()
    terms = []
    # each column is hashed with its position as the seed, so equal values in two columns do not cancel out
    for position, (name, function, utc) in enumerate(columns, start=1):
        column = sql.Identifier(name)
        if function and re.fullmatch(r"[a-z_0-9]+", function):
            value = sql.SQL("{} AT TIME ZONE 'UTC'").format(column) if utc else column
            term = sql.SQL("{}({}, {})").format(sql.Identifier(function), value, sql.Literal(position))
        else:
            term = sql.SQL("hashtextextended({}::text, {})").format(column, sql.Literal(position))
        terms.append(sql.SQL("coalesce({}, {})").format(term, sql.Literal(NULL_MARK + position)))
    return sql.SQL(" # ").join(terms) if terms else sql.SQL("0")


def content_hash(conn: psycopg.Connection, table: str, method: str | None = None) -> tuple[int, str, str]:
    """(rows, hash, method): the sum of every row's hash, so row order does not matter (a restore reorders rows).

    portable_column_hashes hashes each column with a hash function of its type that every supported major has,
    seeded by its position, and combines them per row (no text conversion where the type has one: about half the CPU
    of hash_record_extended, whose record machinery costs as much as the hashing). If that cannot run, each row's text
    form is hashed.
    """
    from psycopg import sql

    methods = [method] if method else ["portable_column_hashes", "hashtextextended"]
    for m in methods:
        try:
            with conn.transaction():  # a savepoint inside the snapshot's transaction
                query = sql.SQL("SELECT count(*), coalesce(sum({}), 0)::text FROM {} t").format(
                    _row_hash_expression(conn, table, m), sql.SQL(table))  # table names come from format('%I.%I')
                rows, total = conn.execute(query).fetchone()
            return rows, total, m
        except (psycopg.errors.UndefinedFunction, psycopg.errors.FeatureNotSupported):
            continue
    raise RuntimeError(f"no content hash method works for {table}")


SCRATCH_COMMENT = "playground-ops scratch database of flow run {run_id}"


def create_scratch_database(admin_url: SecretStr | str, name: str, run_id: str) -> None:
    """Create an empty database for a restore, labelled with the run that owns it."""
    from psycopg import sql

    with connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(SCRATCH_COMMENT.format(run_id=run_id))))


def drop_scratch_database(admin_url: SecretStr | str, name: str, run_id: str) -> bool:
    """Drop a scratch database only if its label says this run created it; True if dropped."""
    from psycopg import sql

    with connect(admin_url) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                           (name,)).fetchone()
        if row is None:
            return False
        if row[0] != SCRATCH_COMMENT.format(run_id=run_id):
            raise PermissionError(f"refusing to drop database {name}: it was not created by run {run_id}")
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


def database_exists(admin_url: SecretStr | str, name: str) -> bool:
    with connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def table_content_hashes(database_url: SecretStr | str, database: str, methods: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Rows and content hash of each table of another database on the same server (a restored copy)."""
    from psycopg.conninfo import make_conninfo

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    out = {}
    with psycopg.connect(make_conninfo(url, dbname=database), autocommit=True, application_name=APPLICATION_NAME) as conn:
        conn.execute(HASH_SESSION)
        for table, method in methods.items():
            rows, total, _ = content_hash(conn, table, method)
            out[table] = (rows, total)
    return out


def restored_sequence_values(database_url: SecretStr | str, database: str, names: list[str]) -> dict[str, int | None]:
    """Each sequence's value in another database on the same server (a restored copy); None where it is missing."""
    from psycopg.conninfo import make_conninfo

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    out: dict[str, int | None] = {}
    with psycopg.connect(make_conninfo(url, dbname=database), autocommit=True, application_name=APPLICATION_NAME) as conn:
        for name in names:
            try:
                out.update(sequence_values(conn, [name]))
            except psycopg.errors.UndefinedTable:
                out[name] = None
    return out


def check_btree_indexes(database_url: SecretStr | str, database: str) -> int:
    """bt_index_check on every btree index of another database on the same server (amcheck's SQL functions, for a
    server older than pg_amcheck's heap checks, PostgreSQL 13); returns how many were checked, raises on corruption."""
    from psycopg.conninfo import make_conninfo

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    with psycopg.connect(make_conninfo(url, dbname=database), autocommit=True, application_name=APPLICATION_NAME) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = conn.execute("SELECT c.oid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                               "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' "
                               "AND i.indisvalid AND i.indisready").fetchall()
        for (oid,) in indexes:
            conn.execute("SELECT bt_index_check(%s::oid::regclass)", (oid,))
    return len(indexes)


def run_queries(database_url: SecretStr | str, database: str, queries: dict[str, str]) -> dict[str, object]:
    """Run read-only queries (smoke checks) and return each first value."""
    from psycopg.conninfo import make_conninfo

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    results = {}
    with psycopg.connect(make_conninfo(url, dbname=database), autocommit=False,
                         application_name=APPLICATION_NAME) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET statement_timeout = '60s'")
        for name, query in queries.items():
            results[name] = conn.execute(query).fetchone()[0]
    return results


def inspect_database(server: SecretStr | str, name: str):
    """What the server says of a database (template or not, its label); None if absent."""
    from tasks.backup.policy import ExistingDatabase

    with connect(server) as conn:
        row = conn.execute("SELECT datistemplate, shobj_description(oid, 'pg_database') "
                           "FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return None if row is None else ExistingDatabase(name, is_template=row[0], comment=row[1])


def swap_in_database(server: SecretStr | str, restored: str, database: str, run_id: str, label: str,
                     drop_replaced: bool = False) -> str | None:
    """Rename `restored` (created by run_id) to `database` and label it; an existing `database` is renamed aside and
    kept, or dropped when `drop_replaced` and its label (read again now) still says playground-ops made it for
    scratch use. Returns what became of the replaced one."""
    from datetime import datetime, timezone

    from psycopg import sql

    from tasks.backup.policy import is_ours_to_drop

    replaced = None
    with connect(server) as conn:
        label_row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                                 (restored,)).fetchone()
        if label_row is None or label_row[0] != SCRATCH_COMMENT.format(run_id=run_id):
            raise PermissionError(f"refusing to rename {restored}: it was not created by run {run_id}")
        existing = conn.execute("SELECT datistemplate, shobj_description(oid, 'pg_database') FROM pg_database "
                                "WHERE datname = %s", (database,)).fetchone()
        if existing and existing[0]:
            raise PermissionError(f"refusing to replace {database}: it is a template database")
        if existing:
            replaced = f"{database}_replaced_{datetime.now(timezone.utc):%Y%m%d%H%M%S}"[:63]
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (database,))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(database), sql.Identifier(replaced)))
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(restored), sql.Identifier(database)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(label)))
        if replaced and drop_replaced and is_ours_to_drop(existing[1]):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(replaced)))
            return f"{database} (made by playground-ops for scratch use: the replaced copy was dropped)"
    return replaced


def rows_as_dicts(cursor) -> list[dict]:
    """A cursor's rows as {column: value} dicts."""
    columns = [c.name for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


@task(**retrying(retries=2, backoff=2, timeout_seconds=None))
def read_sections(database_url: SecretStr, queries: dict[str, str], statement_timeout_s: int = 30) -> dict[str, dict]:
    """Run each read-only query on its own; a section the role may not read is reported, not fatal, and a section
    blocked by someone's lock is read again without taking locks where a lock-free form exists.
    Returns {name: {"rows": [...]}} or {name: {"error": "..."}}."""
    from tasks.database.queries import FALLBACKS

    out: dict[str, dict] = {}
    with connect(database_url, autocommit=True, timeout=10) as conn:
        conn.execute(f"SET statement_timeout = '{int(statement_timeout_s)}s'")
        conn.execute("SET lock_timeout = '5s'")
        for name, query in queries.items():
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    try:
                        with conn.transaction():
                            out[name] = {"rows": rows_as_dicts(conn.execute(query))}
                    except psycopg.errors.LockNotAvailable:
                        if name not in FALLBACKS:
                            raise
                        out[name] = {"rows": rows_as_dicts(conn.execute(FALLBACKS[name])), "estimated": True}
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable,
                    psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedColumn,
                    psycopg.errors.ObjectNotInPrerequisiteState, psycopg.errors.QueryCanceled) as exc:
                out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return out


@task(**retrying(retries=2, backoff=2, timeout_seconds=None))
def explain_statements(database_url: SecretStr, statements: dict[str, str], statement_timeout_s: int = 5) -> dict[str, str]:
    """EXPLAIN (never ANALYZE) each statement's generic plan: PREPARE it, then EXPLAIN EXECUTE with NULL parameters
    under force_generic_plan, in a read-only transaction that is rolled back. Returns queryid -> plan or reason."""
    import re

    plans: dict[str, str] = {}
    with connect(database_url, autocommit=True, timeout=10) as conn:
        for queryid, query in statements.items():
            params = max((int(n) for n in re.findall(r"\$(\d+)", query)), default=0)
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute("SET TRANSACTION READ ONLY")
                    conn.execute(f"SET LOCAL statement_timeout = '{int(statement_timeout_s)}s'")
                    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    conn.execute(f"PREPARE ops_explain AS {query}", prepare=False)
                    args = f"({', '.join(['NULL'] * params)})" if params else ""
                    plan = conn.execute(f"EXPLAIN EXECUTE ops_explain{args}", prepare=False).fetchall()
                    plans[queryid] = "\n".join(r[0] for r in plan)
            except psycopg.Error as exc:
                plans[queryid] = f"(not explained: {str(exc).splitlines()[0][:200]})"
            finally:
                try:
                    conn.execute("DEALLOCATE ALL")
                except psycopg.Error:
                    pass
    return plans


@task(**retrying(retries=3, backoff=2, timeout_seconds=None))
def run_maintenance_step(database_url: SecretStr, sql: str, lock_timeout_s: float, statement_timeout_s: float
                         ) -> dict:
    """Run one maintenance statement outside a transaction block, under lock and statement timeouts.

    A lock timeout skips the step (reported, not retried); a dropped connection is retried, this step only.
    A failed REINDEX CONCURRENTLY's half-built `_ccnew` index is dropped again, so the run leaves none behind.
    """
    import re

    from tasks.retry import TransientError

    started = time.perf_counter()
    result = {"sql": sql, "status": "done", "seconds": 0.0, "detail": ""}
    try:
        with connect(database_url, autocommit=True, timeout=10) as conn:
            conn.execute(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
            conn.execute(f"SET statement_timeout = '{int(statement_timeout_s * 1000)}ms'")
            try:
                conn.execute(sql)
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
                result.update(status="skipped", detail=str(exc).splitlines()[0])
                match = re.match(r"REINDEX INDEX CONCURRENTLY (.+)$", sql)
                if match:
                    _drop_half_built(conn, match.group(1))
            except psycopg.errors.OperationalError:
                raise
            except psycopg.Error as exc:
                result.update(status="failed", detail=str(exc).splitlines()[0])
    except psycopg.OperationalError as exc:
        raise TransientError(f"connection lost during `{sql}`: {str(exc).splitlines()[0]}") from None
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _drop_half_built(conn: psycopg.Connection, index: str) -> None:
    schema, _, name = index.rpartition(".")
    rows = conn.execute("""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
                           WHERE NOT i.indisvalid AND c.relname LIKE %s AND n.nspname = %s""",
                        (name.strip('"') + "_ccnew%", (schema or "public").strip('"'))).fetchall()
    conn.execute("SET lock_timeout = 0")
    for (leftover,) in rows:
        conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {leftover}")


@task(**retrying(retries=2, backoff=2, timeout_seconds=60))
def read_server_identity(database_url: SecretStr) -> dict:
    """Server version, the database connected to and, where the role may read it, the cluster's system identifier."""
    from tasks.database.queries import SERVER, SYSTEM_IDENTIFIER

    identity = read_sections.fn(database_url, {"server": SERVER, "system": SYSTEM_IDENTIFIER})
    return {**identity["server"]["rows"][0], **(identity["system"].get("rows") or [{}])[0]}


def app_names(schema) -> dict:
    """The playground's tables and columns (AppSchema) as SQL identifiers, by role, for the reports' queries."""
    from psycopg import sql

    return {"requests": sql.Identifier(*schema.requests.split(".")), "users": sql.Identifier(*schema.users.split(".")),
            "user_id": sql.Identifier(schema.request_user_id), "id": sql.Identifier(schema.user_id),
            "created_at": sql.Identifier(schema.created_at), "tokens": sql.Identifier(schema.tokens),
            "status": sql.Identifier(schema.status_code), "error_type": sql.Identifier(schema.error_type),
            "endpoint": sql.Identifier(schema.endpoint), "model": sql.Identifier(schema.model),
            "quota": sql.Identifier(schema.daily_quota), "email": sql.Identifier(schema.email),
            "role": sql.Identifier(schema.role), "ip": sql.Identifier(schema.client_ip)}
