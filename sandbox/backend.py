"""The stand-in playground backend: /health, a token endpoint and API endpoints that record into `requests`.

Reads its settings from its environment, as the real one does: DATABASE_URL, REDIS_URL, JWT_SECRET, APP_VERSION.
Run: uvicorn sandbox.backend:app
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import time
from datetime import datetime, timezone

import psycopg
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STARTED = time.time()
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large"]


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_token(user_id: int, secret: str, ttl: int = 3600) -> str:
    """An HS256 JWT for a user, as the real backend's login issues."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": str(user_id), "exp": int(time.time()) + ttl}).encode())
    signature = _b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def verify_token(token: str, secret: str) -> int | None:
    try:
        header, payload, signature = token.split(".")
        expected = _b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["sub"]) if claims.get("exp", 0) > time.time() else None
    except (ValueError, KeyError):
        return None


def log(level: str, message: str, **fields: object) -> None:
    """One JSON log line on stdout, as the platform collects it (timestamp, level, message)."""
    print(json.dumps({"timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level,
                      "message": message, "pid": os.getpid(), **fields}), flush=True)


def _db() -> psycopg.Connection:
    return psycopg.connect(_env("DATABASE_URL"), autocommit=True, connect_timeout=3, application_name="playground-backend")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(_env("REDIS_URL"), socket_timeout=3, socket_connect_timeout=3)


def health(request: Request) -> JSONResponse:
    checks = {}
    try:
        with _db() as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        _redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        log("error", "health check degraded: " + ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
    body = {"status": "ok" if ok else "degraded", **checks, "version": os.environ.get("APP_VERSION", "0.0.0"),
            "uptime_s": round(time.time() - STARTED, 1), "pid": os.getpid()}
    return JSONResponse(body, status_code=200 if ok else 503)


def _record(user_id: int, endpoint: str, model: str | None, status: int, started: float, tokens: int,
            ip: str | None, error: str | None) -> None:
    if status >= 400:
        log("error" if status >= 500 else "warn", f"{endpoint} answered {status}: {error}", status=status)
    with _db() as conn:
        conn.execute("INSERT INTO requests (user_id, endpoint, model, status_code, latency_ms, tokens, client_ip, "
                     "error_type) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (user_id, endpoint, model, status, int((time.perf_counter() - started) * 1000), tokens, ip, error))


async def token(request: Request) -> JSONResponse:
    body = await request.json()
    with _db() as conn:
        row = conn.execute("UPDATE users SET last_login_at = now() WHERE lower(email) = lower(%s) "
                           "AND disabled_at IS NULL RETURNING id", (body.get("email", ""),)).fetchone()
    if row is None:
        return JSONResponse({"error": "unknown or disabled user"}, status_code=401)
    return JSONResponse({"token": issue_token(row[0], _env("JWT_SECRET"))})


async def api(request: Request) -> JSONResponse:
    started = time.perf_counter()
    endpoint = request.url.path
    auth = request.headers.get("authorization", "")
    user_id = verify_token(auth.removeprefix("Bearer "), _env("JWT_SECRET")) if auth.startswith("Bearer ") else None
    if user_id is None:
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    ip = request.client.host if request.client else None
    body = await request.json() if request.method == "POST" else {}
    model = body.get("model") if endpoint != "/api/models" else None
    with _db() as conn:
        quota = conn.execute("SELECT daily_quota FROM users WHERE id = %s", (user_id,)).fetchone()
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    used = _redis().incr(f"quota:{user_id}:{day}")
    _redis().expire(f"quota:{user_id}:{day}", 2 * 86400)
    if quota is None or used > quota[0]:
        _record(user_id, endpoint, model, 429, started, 0, ip, "quota_exceeded")
        return JSONResponse({"error": "daily quota exceeded"}, status_code=429)
    if endpoint == "/api/models":
        _record(user_id, endpoint, None, 200, started, 0, ip, None)
        return JSONResponse({"models": MODELS})
    if model not in MODELS:
        _record(user_id, endpoint, model, 400, started, 0, ip, "invalid_request")
        return JSONResponse({"error": f"unknown model {model!r}"}, status_code=400)
    tokens = random.randint(20, 800)
    _record(user_id, endpoint, model, 200, started, tokens, ip, None)
    return JSONResponse({"model": model, "output": "(sandbox reply)", "usage": {"total_tokens": tokens}})


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette):
    log("info", f"playground backend {os.environ.get('APP_VERSION', '0.0.0')} started")
    yield


app = Starlette(lifespan=lifespan, routes=[
    Route("/health", health),
    Route("/api/token", token, methods=["POST"]),
    Route("/api/chat", api, methods=["POST"]),
    Route("/api/completions", api, methods=["POST"]),
    Route("/api/models", api, methods=["GET"]),
])
