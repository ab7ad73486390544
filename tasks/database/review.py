"""The weekly performance review's judgement (pure): PgHero's checks and more, over what the fetch tasks read.

Every function takes rows (lists of dicts) and returns findings and tables; none touches the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.reporting.report import Finding, Severity


@dataclass
class Thresholds:
    slow_mean_ms: float = 100.0            # a statement slower than this on average is worth a look
    slow_min_calls: int = 50
    long_running_s: float = 60.0           # PgHero's long_running_query_sec
    idle_in_transaction_s: float = 60.0
    cache_hit_ratio: float = 0.99          # PgHero's cache_hit_rate_threshold
    connections_ratio: float = 0.8
    dead_tuple_ratio: float = 0.2
    dead_tuple_min: int = 1000
    stale_analyze_days: float = 7.0
    xid_age_warning: int = 500_000_000
    xid_age_critical: int = 1_500_000_000
    sequence_ratio: float = 0.9            # PgHero's sequence_danger threshold
    unused_index_min_bytes: int = 0
    seq_scan_min_rows: int = 10_000        # PgHero's missing_indexes minimum
    seq_scan_index_share: float = 0.95
    bloat_ratio: float = 0.3
    bloat_min_bytes: int = 1024 * 1024
    redis_memory_ratio: float = 0.7
    redis_fragmentation: float = 1.5
    redis_hit_ratio: float = 0.8


@dataclass
class Section:
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    keep: dict[str, Any] = field(default_factory=dict)  # what the next review compares against

    def add(self, severity: str, message: str, next_step: str | None = None, **evidence: Any) -> None:
        self.findings.append(Finding(severity=Severity(severity), message=message, next_step=next_step, evidence=evidence))

    def merge(self, other: "Section") -> "Section":
        self.findings += other.findings
        self.tables.update(other.tables)
        self.figures.update(other.figures)
        self.keep.update(other.keep)
        return self


PRELOAD_HELP = ("add pg_stat_statements to shared_preload_libraries (and compute_query_id = auto), restart PostgreSQL, "
                "then CREATE EXTENSION pg_stat_statements in this database")


def unreadable(sections: dict[str, dict], available: dict | None = None) -> Section:
    """Name every section that could not be read, and what would let it: a missing privilege asks for pg_monitor;
    pg_stat_statements' own sections are left out when the extension is not there (its finding says so)."""
    out = Section()
    extension_missing = bool(available) and not (available.get("preloaded") and available.get("installed"))
    for name, result in sections.items():
        if "error" not in result or (extension_missing and name.startswith("statements")):
            continue
        privilege = result["error"].startswith("InsufficientPrivilege")
        out.add("warning", f"could not read {name.replace('_', ' ')}: {result['error']}",
                next_step="GRANT pg_monitor (or pg_read_all_stats) to the role playground-ops connects as" if privilege
                else "see the error: this section is read again at the next review", section=name)
    return out


def statement_review(available: dict | None, current: list[dict] | None, previous: list[dict] | None,
                     reset_now: str | None, reset_before: str | None, t: Thresholds, top: int = 10) -> Section:
    """Top statements by mean and total time since the previous review (deltas, not a reset), and new entries."""
    out = Section()
    if available is not None and not available.get("preloaded"):
        out.add("warning", "pg_stat_statements is not loaded: slow queries cannot be reviewed", next_step=PRELOAD_HELP)
        return out
    if available is not None and not available.get("installed"):
        out.add("warning", "pg_stat_statements is loaded but not installed in this database",
                next_step="CREATE EXTENSION pg_stat_statements")
        return out
    if current is None:
        return out
    cur = pd.DataFrame(current, columns=["queryid", "query", "role", "calls", "total_ms", "mean_ms", "rows",
                                         "shared_blks_hit", "shared_blks_read", "io_ms"])
    out.keep["statements"] = cur[["queryid", "calls", "total_ms", "rows", "shared_blks_hit", "shared_blks_read"]
                                 ].to_dict("records")
    out.keep["statements_reset"] = reset_now
    comparable = previous is not None and (reset_now is None or reset_now == reset_before)
    if comparable:
        prev = pd.DataFrame(previous)
        merged = cur.merge(prev, on="queryid", how="left", suffixes=("", "_prev"))
        new = merged["calls_prev"].isna() | (merged["calls"] < merged["calls_prev"])  # evicted and re-added counts as new
        for col in ("calls", "total_ms", "rows", "shared_blks_hit", "shared_blks_read"):
            merged[col] = merged[col] - merged[f"{col}_prev"].where(~new, 0).fillna(0)
        merged["new"] = new
        period = merged[merged["calls"] > 0].copy()
        out.figures["statements_window"] = "since the previous review"
    else:
        period = cur.copy()
        period["new"] = False
        out.figures["statements_window"] = "since the statistics were last reset" + (
            " (they were reset after the previous review)" if previous is not None else "")
    if period.empty:
        return out
    period["mean_ms"] = period["total_ms"] / period["calls"]
    total = period["total_ms"].sum() or 1.0
    period["share_pct"] = 100 * period["total_ms"] / total
    blocks = (period["shared_blks_hit"] + period["shared_blks_read"]).replace(0, float("nan"))
    period["cache_hit_pct"] = 100 * period["shared_blks_hit"] / blocks
    cols = ["queryid", "calls", "mean_ms", "total_ms", "share_pct", "rows", "cache_hit_pct", "new", "query"]
    shown = lambda df: df[cols].round(2).assign(query=df["query"].str.slice(0, 160)).to_dict("records")  # noqa: E731
    out.tables["top_by_total_time"] = shown(period.nlargest(top, "total_ms"))
    out.tables["top_by_mean_time"] = shown(period[period["calls"] >= t.slow_min_calls].nlargest(top, "mean_ms"))
    out.tables["new_statements"] = shown(period[period["new"]].nlargest(top, "total_ms")) if comparable else []
    out.figures.update(statements=len(period), statement_time_ms=round(total, 1),
                       new_statements=int(period["new"].sum()) if comparable else None)
    slow = period[(period["mean_ms"] >= t.slow_mean_ms) & (period["calls"] >= t.slow_min_calls)]
    for _, row in slow.nlargest(top, "total_ms").iterrows():
        out.add("warning", f"slow statement: {row['mean_ms']:.0f} ms on average over {int(row['calls'])} calls "
                           f"({row['share_pct']:.1f}% of all statement time)",
                next_step="EXPLAIN it (see the plans table) and add the index or rewrite the query",
                queryid=row["queryid"], query=str(row["query"])[:200])
    out.keep["explain_candidates"] = [
        {"queryid": r["queryid"], "query": r["query"]} for _, r in period.nlargest(top, "mean_ms").iterrows()
        if safe_to_explain(str(r["query"]))]
    return out


def safe_to_explain(query: str) -> bool:
    """Only plain reads are explained: a SELECT (or WITH ... SELECT) with no data-modifying statement in it."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).strip().lower()
    if not (text.startswith("select") or text.startswith("with")):
        return False
    return not re.search(r"\b(insert|update|delete|merge|truncate|copy|call|do|lock|for\s+update|for\s+share)\b", text)


def index_review(indexes: list[dict] | None, tables: list[dict] | None, statements: list[dict] | None,
                 t: Thresholds) -> Section:
    """Unused, duplicate/redundant and invalid indexes, and large tables read by sequential scans; each with the SQL
    an operator would run. Nothing is applied."""
    out = Section()
    if indexes:
        idx = pd.DataFrame(indexes)
        unused = idx[(idx["scans"] == 0) & ~idx["is_unique"] & ~idx["is_primary"] & ~idx["is_exclusion"]
                     & ~idx["backs_constraint"] & idx["is_valid"] & (idx["bytes"] >= t.unused_index_min_bytes)]
        rows = []
        for _, r in unused.sort_values("bytes", ascending=False).iterrows():
            sql = f"DROP INDEX CONCURRENTLY {r['index']};"
            rows.append({"index": r["index"], "table": r["table"], "bytes": int(r["bytes"]), "suggested_sql": sql})
            out.add("info", f"unused index {r['index']} ({int(r['bytes']):,} bytes): never scanned since stats reset",
                    next_step=f"if it is not needed elsewhere (replicas, rare reports): {sql}", index=r["index"])
        out.tables["unused_indexes"] = rows
        out.tables["duplicate_indexes"] = _duplicates(idx, out)
        rows = []
        for _, r in idx[~idx["is_valid"]].iterrows():
            leftover = re.search(r"_cc(new|old)\d*$", r["index"].split(".")[-1])
            sql = f"DROP INDEX CONCURRENTLY {r['index']};" + ("" if leftover else
                  f" -- then fix the cause and CREATE it again CONCURRENTLY (or REINDEX INDEX CONCURRENTLY {r['index']};)")
            why = "left by a failed concurrent reindex" if leftover else "a failed or interrupted CREATE INDEX CONCURRENTLY"
            rows.append({"index": r["index"], "table": r["table"], "why": why, "suggested_sql": sql})
            out.add("warning", f"invalid index {r['index']}: {why}; it is maintained on every write but never used",
                    next_step=sql, index=r["index"])
        out.tables["invalid_indexes"] = rows
    if tables:
        tab = pd.DataFrame(tables)
        scans = tab["seq_scan"] + tab["idx_scan"]
        candidates = tab[(tab["n_live_tup"] >= t.seq_scan_min_rows) & (tab["seq_scan"] > 0)
                         & ((tab["idx_scan"] / scans.where(scans > 0, 1)) < t.seq_scan_index_share)]
        rows = []
        for _, r in candidates.sort_values("seq_tup_read", ascending=False).iterrows():
            columns = filter_columns(r["table"], statements or [])
            sql = (f"CREATE INDEX CONCURRENTLY ON {r['table']} ({columns[0]});" if columns else
                   f"-- EXPLAIN the statements that read {r['table']} to find the column to index")
            rows.append({"table": r["table"], "seq_scans": int(r["seq_scan"]), "rows_read_by_seq_scans": int(r["seq_tup_read"]),
                         "index_scan_share": round(float(r["idx_scan"]) / max(float(r["seq_scan"] + r["idx_scan"]), 1), 3),
                         "live_rows": int(r["n_live_tup"]), "filtered_columns": ", ".join(columns), "suggested_sql": sql})
            out.add("warning", f"{r['table']} ({int(r['n_live_tup']):,} rows) is read mostly by sequential scans "
                               f"({int(r['seq_scan'])} scans, {int(r['seq_tup_read']):,} rows read)",
                    next_step=sql, table=r["table"])
        out.tables["missing_index_candidates"] = rows
    return out


def _duplicates(idx: pd.DataFrame, out: Section) -> list[dict]:
    """An index whose columns are a leading prefix of another's on the same table, with the same method, operator
    classes, expressions and predicate, is redundant (PgHero's rule); a unique or constraint index is never the one."""
    rows = []
    valid = idx[idx["is_valid"]]
    for table, group in valid.groupby("table"):
        items = list(group.itertuples())
        for a in items:
            if a.is_unique or a.is_primary or a.backs_constraint:
                continue
            for b in items:
                if a.index == b.index or (a.method, a.expressions, a.predicate) != (b.method, b.expressions, b.predicate):
                    continue
                ac, bc = a.columns.split(), b.columns.split()
                ao, bo = a.opclasses.split(), b.opclasses.split()
                if len(ac) <= len(bc) and bc[:len(ac)] == ac and bo[:len(ao)] == ao:
                    if len(ac) == len(bc) and a.index > b.index and not (b.is_unique or b.backs_constraint):
                        continue  # exact duplicates: name one of the pair, once
                    kind = "duplicate" if len(ac) == len(bc) else "redundant"
                    sql = f"DROP INDEX CONCURRENTLY {a.index};"
                    rows.append({"index": a.index, "covered_by": b.index, "kind": kind, "bytes": int(a.bytes),
                                 "suggested_sql": sql})
                    out.add("warning", f"{kind} index {a.index}: {b.index} already covers its columns",
                            next_step=sql, index=a.index, covered_by=b.index)
                    break
    return rows


def filter_columns(table: str, statements: list[dict]) -> list[str]:
    """Columns the statements that read `table` filter on (`WHERE col = $1`, `AND col > $2` ...), most used first."""
    name = table.split(".")[-1].strip('"')
    counts: dict[str, int] = {}
    for s in statements:
        query = str(s.get("query", ""))
        if not re.search(rf"\bfrom\s+(\w+\.)?\"?{re.escape(name)}\"?\b", query, re.I):
            continue
        where = re.split(r"\bwhere\b", query, maxsplit=1, flags=re.I)
        if len(where) < 2:
            continue
        for col in re.findall(r"(?:^|\band\b|\bor\b|\()\s*\"?([a-z_][a-z0-9_]*)\"?\s*(?:=|<|>|<=|>=|in\b|like\b)",
                              where[1], re.I):
            if col.lower() not in {"and", "or", "not", "select"}:
                counts[col] = counts.get(col, 0) + int(s.get("calls", 1) or 1)
    return sorted(counts, key=counts.get, reverse=True)


def health_review(sections: dict[str, dict], t: Thresholds) -> Section:
    """Cache hit ratio, connections by state, long-running and idle-in-transaction sessions, dead tuples and stale
    statistics, transaction ID age, sequences near their maximum, estimated bloat."""
    out = Section()
    rows = lambda name: sections.get(name, {}).get("rows")  # noqa: E731
    if cache := rows("cache_hit"):
        for kind in ("table", "index"):
            ratio = cache[0][f"{kind}_hit_ratio"]
            out.figures[f"{kind}_cache_hit_ratio"] = round(ratio, 4) if ratio is not None else None
            if ratio is not None and ratio < t.cache_hit_ratio:
                out.add("warning", f"{kind} cache hit ratio {ratio:.1%} is below {t.cache_hit_ratio:.0%}",
                        next_step="raise shared_buffers or reduce the working set (indexes, archiving old rows)")
    if conns := rows("connections"):
        total, maximum = sum(r["connections"] for r in conns), conns[0]["max_connections"]
        out.tables["connections"] = conns
        out.figures.update(connections=total, max_connections=maximum)
        if total > t.connections_ratio * maximum:
            out.add("warning", f"{total} connections of {maximum} allowed ({total / maximum:.0%})",
                    next_step="use a connection pooler or lower the application's pool size")
    if activity := rows("activity"):
        long = [a for a in activity if a["state"] == "active" and (a["query_seconds"] or 0) > t.long_running_s]
        idle = [a for a in activity if a["state"] in ("idle in transaction", "idle in transaction (aborted)")
                and (a["state_seconds"] or 0) > t.idle_in_transaction_s]
        out.tables["long_running_queries"] = long
        out.tables["idle_in_transaction"] = idle
        for a in long:
            out.add("warning", f"query running for {a['query_seconds']:.0f} s (pid {a['pid']}, {a['application']})",
                    next_step=f"investigate, or SELECT pg_cancel_backend({a['pid']});", pid=a["pid"], query=a["query"][:200])
        for a in idle:
            out.add("warning", f"session idle in transaction for {a['state_seconds']:.0f} s (pid {a['pid']}, "
                               f"{a['application'] or a['user']}): it holds locks and blocks vacuum",
                    next_step=f"fix the application's transaction handling; SELECT pg_terminate_backend({a['pid']}); "
                              "set idle_in_transaction_session_timeout", pid=a["pid"])
    if tabs := rows("tables"):
        df = pd.DataFrame(tabs)
        dead = df[(df["n_dead_tup"] >= t.dead_tuple_min)
                  & (df["n_dead_tup"] > t.dead_tuple_ratio * (df["n_live_tup"] + df["n_dead_tup"]).clip(lower=1))]
        out.tables["dead_tuples"] = df.sort_values("n_dead_tup", ascending=False).head(20)[
            ["table", "n_live_tup", "n_dead_tup", "last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"]
        ].to_dict("records")
        for _, r in dead.iterrows():
            out.add("warning", f"{r['table']} has {int(r['n_dead_tup']):,} dead tuples "
                               f"({r['n_dead_tup'] / max(r['n_live_tup'] + r['n_dead_tup'], 1):.0%})",
                    next_step=f"VACUUM (ANALYZE) {r['table']}; check autovacuum is keeping up", table=r["table"])
        bloat = table_bloat(df, t)
        out.tables["table_bloat"] = bloat
        for b in bloat:
            out.add("info", f"{b['table']} is about {b['bloat_ratio']:.0%} bloated (~{b['wasted_bytes']:,} bytes)",
                    next_step="VACUUM it; only VACUUM FULL (locks the table) or pg_repack return the space",
                    table=b["table"])
    if xids := rows("xid_age"):
        out.tables["transaction_id_age"] = xids
        for x in xids:
            level = "critical" if x["xid_age"] > t.xid_age_critical else ("warning" if x["xid_age"] > t.xid_age_warning else None)
            if level:
                out.add(level, f"database {x['database']} is {x['xid_age']:,} transactions from its last freeze "
                               "(wraparound at about 2.1 billion)",
                        next_step="VACUUM (FREEZE) its oldest tables; find what holds back the xmin horizon")
    if seqs := rows("sequences"):
        near = []
        for s in seqs:
            limit = column_max(s.get("column_type")) or s["sequence_max"]
            ratio = (s["last_value"] or 0) / limit if limit else 0
            if ratio > t.sequence_ratio:
                near.append({**s, "limit": limit, "used_ratio": round(ratio, 4)})
                out.add("critical" if ratio > 0.98 else "warning",
                        f"sequence {s['sequence']} has used {ratio:.0%} of its range ({s['last_value']:,} of {limit:,})",
                        next_step=(f"ALTER TABLE ... ALTER COLUMN {s['column_name'].split('.')[-1]} TYPE bigint "
                                   f"(and ALTER SEQUENCE {s['sequence']} AS bigint)") if s.get("column_name")
                        else f"ALTER SEQUENCE {s['sequence']} AS bigint MAXVALUE ...", sequence=s["sequence"])
        out.tables["sequences_near_max"] = near
    if ib := rows("index_bloat"):
        out.tables["index_bloat"] = index_bloat(ib, t)
        for b in out.tables["index_bloat"]:
            out.add("info", f"index {b['index']} is about {b['bloat_ratio']:.0%} bloated (~{b['wasted_bytes']:,} bytes)",
                    next_step=f"REINDEX INDEX CONCURRENTLY {b['index']}; (database-maintenance does this)",
                    index=b["index"])
    return out


INT_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}


def column_max(column_type: str | None) -> int | None:
    return INT_MAX.get((column_type or "").lower())


def table_bloat(df: pd.DataFrame, t: Thresholds) -> list[dict]:
    """Estimated from the planner's statistics: live rows times average width (plus tuple headers) against the heap."""
    rows = []
    for _, r in df.iterrows():
        if not r.get("row_width") or not r["heap_bytes"] or r["heap_bytes"] < t.bloat_min_bytes:
            continue
        expected = max(float(r["reltuples"]), 0) * (float(r["row_width"]) + 28) / 0.92  # headers, item pointers, page fill
        wasted = r["heap_bytes"] - expected
        ratio = wasted / r["heap_bytes"]
        if ratio > t.bloat_ratio:
            rows.append({"table": r["table"], "heap_bytes": int(r["heap_bytes"]), "wasted_bytes": int(wasted),
                         "bloat_ratio": round(ratio, 3)})
    return rows


def index_bloat(rows_in: list[dict], t: Thresholds) -> list[dict]:
    """B-tree estimate: tuples times (key width + tuple overhead) at the default 90% fill, against the index size."""
    rows = []
    for r in rows_in:
        if not r["key_width"] or not r["bytes"] or r["bytes"] < t.bloat_min_bytes or (r["tuples"] or 0) <= 0:
            continue
        expected = r["tuples"] * (float(r["key_width"]) + 16) / 0.9 + 8192  # plus the meta page
        wasted = r["bytes"] - expected
        ratio = wasted / r["bytes"]
        if ratio > t.bloat_ratio:
            rows.append({"index": r["index"], "table": r["table"], "bytes": int(r["bytes"]),
                         "wasted_bytes": int(wasted), "bloat_ratio": round(ratio, 3)})
    return rows


def growth_review(sections: dict[str, dict], previous: dict[str, Any] | None) -> Section:
    """Database and table sizes, and their growth since the previous review (the guide's 'database size growth')."""
    out = Section()
    size = (sections.get("database_size", {}).get("rows") or [{}])[0].get("bytes")
    tabs = sections.get("tables", {}).get("rows") or []
    if size is None:
        return out
    sizes = {r["table"]: r["total_bytes"] for r in tabs}
    out.keep.update(database_bytes=size, table_bytes=sizes)
    out.figures["database_bytes"] = size
    before = (previous or {}).get("database_bytes")
    before_tables = (previous or {}).get("table_bytes") or {}
    if before:
        out.figures["database_growth_bytes"] = size - before
        out.figures["database_growth_pct"] = round(100 * (size - before) / before, 2)
    top = sorted(tabs, key=lambda r: -r["total_bytes"])[:15]
    out.tables["sizes"] = [{"table": r["table"], "total_bytes": r["total_bytes"], "table_bytes": r["table_bytes"],
                            "index_bytes": r["index_bytes"], "toast_bytes": r["toast_bytes"],
                            "growth_bytes": (r["total_bytes"] - before_tables[r["table"]]) if r["table"] in before_tables else None}
                           for r in top]
    return out


def redis_review(info: dict[str, Any] | None, slowlog: list[dict] | None, previous: dict[str, Any] | None,
                 t: Thresholds) -> Section:
    """Memory against maxmemory and fragmentation, evictions, hit rate and ops/s over the week (deltas of counters,
    not since restart), clients, SLOWLOG."""
    out = Section()
    if info is None:
        return out
    keep = {k: info.get(k, 0) for k in ("keyspace_hits", "keyspace_misses", "total_commands_processed",
                                        "evicted_keys", "rejected_connections", "uptime_in_seconds", "run_id")}
    out.keep["redis"] = keep
    used, maximum = info.get("used_memory", 0), info.get("maxmemory", 0)
    frag = info.get("mem_fragmentation_ratio")
    prev = previous or {}
    same_process = prev.get("run_id") == info.get("run_id") and prev.get("uptime_in_seconds", 0) < info.get("uptime_in_seconds", 0)
    base = prev if same_process else {k: 0 for k in keep}
    window_s = (info.get("uptime_in_seconds", 0) - base.get("uptime_in_seconds", 0)) or 1
    d = {k: info.get(k, 0) - base.get(k, 0) for k in ("keyspace_hits", "keyspace_misses", "total_commands_processed",
                                                        "evicted_keys", "rejected_connections")}
    lookups = d["keyspace_hits"] + d["keyspace_misses"]
    hit = d["keyspace_hits"] / lookups if lookups else None
    out.figures.update(redis_used_memory=used, redis_maxmemory=maximum, redis_fragmentation=frag,
                       redis_hit_ratio=round(hit, 4) if hit is not None else None,
                       redis_ops_per_sec=round(d["total_commands_processed"] / window_s, 2),
                       redis_evicted_keys=d["evicted_keys"], redis_rejected_connections=d["rejected_connections"],
                       redis_connected_clients=info.get("connected_clients"),
                       redis_window="since the previous review" if same_process else "since Redis started")
    if maximum and used / maximum > t.redis_memory_ratio:
        out.add("warning", f"Redis uses {used / maximum:.0%} of maxmemory", next_step="reduce keys or TTLs, or raise maxmemory")
    if not maximum:
        out.add("info", "Redis has no maxmemory: it can grow until the host runs out of memory",
                next_step="set maxmemory and a maxmemory-policy suited to a cache (allkeys-lru)")
    if frag and frag > t.redis_fragmentation and used > 64 * 1024 * 1024:
        out.add("warning", f"Redis memory fragmentation ratio {frag}", next_step="CONFIG SET activedefrag yes")
    if d["evicted_keys"]:
        out.add("warning", f"Redis evicted {d['evicted_keys']:,} keys", next_step="raise maxmemory or shorten TTLs")
    if d["rejected_connections"]:
        out.add("critical", f"Redis rejected {d['rejected_connections']:,} connections (maxclients)",
                next_step="raise maxclients or fix a connection leak")
    if hit is not None and lookups >= 1000 and hit < t.redis_hit_ratio:
        out.add("warning", f"Redis keyspace hit rate {hit:.0%} is below {t.redis_hit_ratio:.0%}",
                next_step="cache what is read, check TTLs")
    out.tables["redis_slowlog"] = slowlog or []
    return out


def order_findings(findings: list[Finding]) -> list[Finding]:
    rank = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(findings, key=lambda f: rank[f.severity])
