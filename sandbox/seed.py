"""A deterministic seed of realistic playground traffic, loaded with COPY.

Same arguments, same rows: a few heavy users, diurnal traffic, about 2% errors, long-tail latencies.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg

ENDPOINTS = np.array(["/api/chat", "/api/completions", "/api/embeddings", "/api/images", "/api/models"])
ENDPOINT_P = np.array([0.55, 0.20, 0.15, 0.05, 0.05])
MODELS = np.array(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large"])
MODEL_P = np.array([0.30, 0.35, 0.20, 0.10, 0.05])
# (status code, error type, probability): about 2% of requests fail
ERRORS = [(429, "rate_limited", 0.006), (429, "quota_exceeded", 0.003), (400, "invalid_request", 0.004),
          (401, "unauthorized", 0.002), (500, "internal_error", 0.003), (504, "upstream_timeout", 0.002)]
SECONDARY = {
    "drop": ["ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_user_id_fkey",
             "DROP INDEX IF EXISTS requests_created_at_idx", "DROP INDEX IF EXISTS requests_user_id_created_at_idx",
             "DROP INDEX IF EXISTS requests_endpoint_created_at_idx"],
}
CHUNK = 250_000


@dataclass
class SeedResult:
    users: int
    requests: int
    start: datetime
    end: datetime
    seconds: float


def _users(rng: np.random.Generator, n: int, end: datetime, days: int) -> pd.DataFrame:
    ids = np.arange(1, n + 1)
    created = end - pd.to_timedelta(days + rng.uniform(0, 60, n), unit="D")
    last_login = end - pd.to_timedelta(rng.uniform(0, days, n), unit="D")
    disabled = np.where(rng.random(n) < 0.02, (end - pd.to_timedelta(rng.uniform(0, days, n), unit="D")).astype(str), "")
    return pd.DataFrame({
        "email": [f"user{i}@example.com" for i in ids],
        "role": np.where(rng.random(n) < 0.01, "admin", "user"),
        "daily_quota": rng.choice([100, 1000, 10000], n, p=[0.5, 0.4, 0.1]),
        "created_at": created.astype(str), "last_login_at": last_login.astype(str), "disabled_at": disabled,
    })


def _requests(rng: np.random.Generator, n: int, users: int, end: datetime, days: int) -> pd.DataFrame:
    weights = 1.0 / np.arange(1, users + 1) ** 1.1  # a few heavy users, a long tail of light ones
    user_id = rng.choice(np.arange(1, users + 1), n, p=weights / weights.sum())
    # diurnal traffic: a day's hours weighted by a sine peaking in the afternoon UTC
    hour_p = 1 + 0.8 * np.sin(2 * np.pi * (np.arange(24) - 9) / 24)
    hours = rng.choice(24, n, p=hour_p / hour_p.sum())
    seconds = rng.integers(0, days, n) * 86400 + hours * 3600 + rng.uniform(0, 3600, n)
    seconds.sort()
    start = np.datetime64(end.replace(tzinfo=None) - timedelta(days=days), "us")
    created = np.datetime_as_string(start + (seconds * 1e6).astype("timedelta64[us]"), unit="us")  # UTC: see _copy
    endpoint = rng.choice(ENDPOINTS, n, p=ENDPOINT_P)
    model = np.where(endpoint == "/api/models", "", rng.choice(MODELS, n, p=MODEL_P))
    status = np.full(n, 200, dtype=np.int16)
    error_type = np.full(n, "", dtype=object)
    u = rng.random(n)
    edge = 0.0
    for code, kind, p in ERRORS:
        hit = (u >= edge) & (u < edge + p)
        status[hit], error_type[hit] = code, kind
        edge += p
    base = np.where(endpoint == "/api/chat", 900, np.where(endpoint == "/api/images", 2500,
                    np.where(endpoint == "/api/embeddings", 80, np.where(endpoint == "/api/models", 15, 600))))
    latency = (base * rng.lognormal(0, 0.6, n)).astype(np.int64)
    latency[error_type == "upstream_timeout"] = 30000
    tokens = np.where((status == 200) & (endpoint != "/api/models"), rng.lognormal(6, 1, n).astype(np.int64), 0)
    ips = np.array([f"203.0.{u % 250 + 1}.{u // 250 % 250 + 1}" for u in range(users + 1)], dtype=object)
    return pd.DataFrame({"user_id": user_id, "endpoint": endpoint, "model": model, "status_code": status,
                         "latency_ms": latency, "tokens": tokens, "client_ip": ips[user_id],
                         "error_type": error_type, "created_at": created})


def _copy(conn: psycopg.Connection, table: str, df: pd.DataFrame) -> None:
    columns = ", ".join(df.columns)
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '', FREEZE)") as copy:
        for i in range(0, len(df), CHUNK):
            buf = io.StringIO()
            df.iloc[i:i + CHUNK].to_csv(buf, header=False, index=False)
            copy.write(buf.getvalue())


def seed(database_url: str, users: int = 200, requests: int = 20_000, days: int = 7, seed_value: int = 42,
         end: datetime | None = None) -> SeedResult:
    """Replace the sandbox's users and requests with a deterministic, realistic data set."""
    import time

    if users < 1 or requests < 0 or days < 1:
        raise ValueError("seed: expected --users >= 1, --requests >= 0 and --days >= 1")
    began = time.perf_counter()
    end = (end or datetime.now(timezone.utc)).replace(second=0, microsecond=0)
    rng = np.random.default_rng(seed_value)
    user_rows = _users(rng, users, end, days)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET TIME ZONE 'UTC'")  # the generated timestamps are UTC without an offset
        conn.execute("TRUNCATE requests, users RESTART IDENTITY")
        for statement in SECONDARY["drop"]:
            conn.execute(statement)
        _copy(conn, "users", user_rows)
        for i in range(0, requests, 1_000_000):
            _copy(conn, "requests", _requests(rng, min(1_000_000, requests - i), users, end, days))
        conn.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute((__import__("pathlib").Path(__file__).with_name("schema.sql")).read_text())
        conn.execute("VACUUM ANALYZE users")
        conn.execute("VACUUM ANALYZE requests")
    return SeedResult(users, requests, end - timedelta(days=days), end, round(time.perf_counter() - began, 2))
