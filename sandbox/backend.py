"""The stand-in playground backend: /health, a token endpoint and API endpoints that record into `requests`.

Reads its settings from its environment, as the real one does: DATABASE_URL, REDIS_URL, JWT_SECRET,
JWT_REFRESH_SECRET, APP_VERSION. It does what the real backend must do for secret-rotation: it signs with
JWT_SECRET (JWT_REFRESH_SECRET) only, and verifies with it, then with JWT_SECRET_PREVIOUS
(JWT_REFRESH_SECRET_PREVIOUS) while that is set, logging (at most every 10 s per process) that a token was accepted
only by the previous secret, and whose: what secret-rotation's finish step looks for before it removes it.
SANDBOX_LEGACY_JWT=1 makes it a backend that predates this (current secret only), for the rollback test.
Run: python -m sandbox.instance sandbox.backend:app PORT RUN_DIR (or uvicorn sandbox.backend:app)
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


ACCESS_TTL, REFRESH_TTL = 3600, 7 * 86400


def issue_token(user_id: int | str, secret: str, ttl: int = ACCESS_TTL) -> str:
    """An HS256 JWT for a user, as the real backend's login issues."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": str(user_id), "exp": int(time.time()) + ttl}).encode())
    signature = _b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def verify_token(token: str, secret: str) -> str | None:
    """The token's subject if it is signed with the secret and not expired."""
    try:
        header, payload, signature = token.split(".")
        expected = _b64(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"]) if claims.get("exp", 0) > time.time() else None
    except (ValueError, KeyError):
        return None


_previous_logged: dict[str, float] = {}


def verify_rotating(token: str, name: str) -> str | None:
    """Verify with the secret in `name`, then with `<name>_PREVIOUS` while a rotation's grace period keeps it."""
    subject = verify_token(token, _env(name))
    previous = os.environ.get(f"{name}_PREVIOUS")
    if subject is None and previous and not os.environ.get("SANDBOX_LEGACY_JWT"):
        subject = verify_token(token, previous)
        if subject is not None and time.time() - _previous_logged.get(f"{name}:{subject}", 0) > 10:
            _previous_logged[f"{name}:{subject}"] = time.time()
            log("info", f"token of {subject} accepted with {name}_PREVIOUS (issued before the rotation)", secret=name)
    return subject


def log(level: str, message: str, **fields: object) -> None:
    """One JSON log line on stdout, as the platform collects it (timestamp, level, message)."""
    print(json.dumps({"timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level,
                      "message": message, "pid": os.getpid(), **fields}), flush=True)


def client_ip(request: Request) -> str | None:
    """The caller's address as the platform's proxy passes it (the first X-Forwarded-For hop), else the peer's."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return forwarded or (request.client.host if request.client else None)


def authentication_failed(request: Request, reason: str, user: str | None = None) -> JSONResponse:
    """A 401, logged as the real backend logs it: one line with the client's IP and the user when known."""
    ip = client_ip(request)
    log("warn", f"authentication failed for {user or 'unknown user'} from {ip}: {reason}", ip=ip, user=user,
        path=request.url.path)
    return JSONResponse({"error": "unauthorized" if reason != "unknown or disabled user" else reason}, status_code=401)


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
        return authentication_failed(request, "unknown or disabled user", str(body.get("email", ""))[:200] or None)
    refresh = os.environ.get("JWT_REFRESH_SECRET")
    return JSONResponse({"token": issue_token(row[0], _env("JWT_SECRET")),
                         **({"refresh_token": issue_token(row[0], refresh, REFRESH_TTL)} if refresh else {})})


async def me(request: Request) -> JSONResponse:
    """Who the access token belongs to (no side effect): what secret-rotation's test step calls."""
    auth = request.headers.get("authorization", "")
    subject = verify_rotating(auth.removeprefix("Bearer "), "JWT_SECRET") if auth.startswith("Bearer ") else None
    return JSONResponse({"sub": subject}) if subject else authentication_failed(request, "invalid access token")


async def refresh(request: Request) -> JSONResponse:
    """A new access token for a valid refresh token."""
    body = await request.json()
    token = body.get("refresh_token") if isinstance(body, dict) else None
    subject = verify_rotating(token, "JWT_REFRESH_SECRET") if isinstance(token, str) else None
    if subject is None:
        return authentication_failed(request, "invalid refresh token")
    return JSONResponse({"token": issue_token(subject, _env("JWT_SECRET"))})


async def api(request: Request) -> JSONResponse:
    started = time.perf_counter()
    endpoint = request.url.path
    auth = request.headers.get("authorization", "")
    subject = verify_rotating(auth.removeprefix("Bearer "), "JWT_SECRET") if auth.startswith("Bearer ") else None
    user_id = int(subject) if subject and subject.isdigit() else None
    if user_id is None:
        return authentication_failed(request, "missing or invalid access token")
    ip = client_ip(request)
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
    Route("/api/me", me, methods=["GET"]),
    Route("/api/refresh", refresh, methods=["POST"]),
    Route("/api/chat", api, methods=["POST"]),
    Route("/api/completions", api, methods=["POST"]),
    Route("/api/models", api, methods=["GET"]),
])
