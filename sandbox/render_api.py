"""A local Render-compatible platform: the part of Render's REST API v1 the runbooks use, on loopback, managing the
sandbox's backend as real processes.

Implemented (https://api-docs.render.com, shapes as in render-oss/cli's generated client), for two services: the
backend (a web service, srv-sandboxbackend00001) and the frontend (a static site, srv-sandboxfrontend0001, which has
env vars and deploys but no instances: restart, scale, autoscaling, instances and rollback answer it 400):
    GET    /services                              [{cursor, service}], name and type filters, cursor pagination
    GET    /services/{id}                         the service
    GET    /services/{id}/env-vars                [{cursor, envVar: {key, value}}], cursor pagination (limit <= 100)
    GET    /services/{id}/env-vars/{key}          {key, value}
    PUT    /services/{id}/env-vars/{key}          {"value"} or {"generateValue": true} -> {key, value}
    DELETE /services/{id}/env-vars/{key}          204
    GET    /services/{id}/deploys                 [{cursor, deploy}], newest first, cursor pagination (limit <= 100)
    POST   /services/{id}/restart                 really restarts the backend's processes with the current env vars,
                                                  without downtime: new instances first, checked healthy on their
                                                  own ports, then the old ones drained (unhealthy: old ones kept)
    POST   /services/{id}/deploys                 201 deploy; build, then restart; `live` once /health answers, else
                                                  `update_failed` (the previous processes' env is kept)
    GET    /services/{id}/deploys/{deployId}      the deploy and its status
    POST   /services/{id}/rollback                {"deployId"}: a new deploy (trigger rollback) of that deploy's build
    POST   /services/{id}/scale                   {"numInstances"}: N instance processes on one port (SO_REUSEPORT)
    PUT    /services/{id}/autoscaling             stored and returned (no autoscaler acts on it here)
    DELETE /services/{id}/autoscaling
    GET    /services/{id}/instances               one per instance process
    GET    /services/{id}/events                  [{cursor, event: {id, timestamp, serviceId, type, details}}], newest
                                                  first: server_restarted, server_failed, deploy_started,
                                                  deploy_ended, instance_count_changed, autoscaling_config_changed
                                                  (Render lists no env-var change; playground-ops' own runs do)
    GET    /metrics/{cpu|memory|cpu-limit|memory-limit|http-requests|http-latency}
                                                  TimeSeries [{labels, unit, values: [{timestamp, value}]}]; cpu and
                                                  memory sampled from /proc every 2 s per process; HTTP ones computed
                                                  from the sandbox's `requests` table
    GET    /logs                                  the backend's JSON log lines; filters level, text; newest first;
                                                  time-window paging with hasMore / nextStartTime / nextEndTime
Auth: `Authorization: Bearer <key>`; 401 {"id": "unauthorized", ...}; an unknown service 404 {"id": "not_found", ...}.
Rate limit: writes (POST, PUT, PATCH, DELETE) at most RENDER_STANDIN_WRITE_LIMIT per minute (default 30, as Render's
"all other" writes), answered 429 with Retry-After; every response carries Ratelimit-Limit, -Remaining and -Reset.
Sandbox-only (not Render): POST /sandbox/metrics {"kind": "cpu"|"memory", "value", "instance"?, "timestamp"?} adds a
sample (CPU in cores, memory in bytes; now, or at an earlier epoch time), {"kind", "clear": true} removes what was added, so tests can drive the CPU and memory alerts.
Differences from Render: one service (the sandbox backend), one owner; no builds (a deploy restarts); metrics kept in
memory for 24 hours.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground_ops.settings import Settings
from sandbox import manager

TICKS = os.sysconf("SC_CLK_TCK")
CPU_LIMIT = 0.5  # Render "starter": 0.5 CPU, 512 MB
MEMORY_LIMIT = 512 * 1024 * 1024


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _error(status: int, id_: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"id": id_, "message": message}, status_code=status, headers=headers)


class Sampler:
    """CPU (cores) and memory (RSS bytes) of each backend process, every `every` seconds, kept for 24 hours."""

    def __init__(self, settings: Settings, every: float = 2.0):
        self.settings, self.every = settings, every
        self.points: dict[tuple[str, str], deque] = {}
        self.injected: dict[tuple[str, str], deque] = {}
        self.last: dict[int, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def processes(self) -> list[int]:
        return manager.backend_pids(self.settings)

    def sample(self) -> None:
        now = time.time()
        for pid in self.processes():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu_seconds = (int(fields[11]) + int(fields[12])) / TICKS
                rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
            before = self.last.get(pid)
            self.last[pid] = (now, cpu_seconds)
            instance = f"{manager.RENDER_SERVICE_ID}-{pid}"
            with self.lock:
                if before:
                    self._add(self.points, "cpu", instance, now, max(0.0, (cpu_seconds - before[1]) / (now - before[0])))
                self._add(self.points, "memory", instance, now, float(rss))

    @staticmethod
    def _add(where: dict, kind: str, instance: str, ts: float, value: float) -> None:
        where.setdefault((kind, instance), deque(maxlen=int(86400 / 2))).append((ts, value))

    def inject(self, kind: str, value: float | None, instance: str, at: float | None = None) -> None:
        with self.lock:
            if value is None:
                for key in [k for k in self.injected if k[0] == kind]:
                    del self.injected[key]
            else:
                self._add(self.injected, kind, instance, at or time.time(), value)
                points = self.injected[(kind, instance)]
                self.injected[(kind, instance)] = deque(sorted(points), maxlen=points.maxlen)

    def series(self, kind: str, start: float, end: float, resolution: float) -> list[dict]:
        with self.lock:
            chosen = {k: list(v) for k, v in {**self.points, **self.injected}.items() if k[0] == kind}
        out = []
        for (_, instance), points in sorted(chosen.items()):
            buckets: dict[float, list[float]] = {}
            for ts, value in points:
                if start <= ts <= end:
                    buckets.setdefault(ts - ts % resolution, []).append(value)
            if buckets:
                out.append({"labels": [{"field": "instance", "value": instance}], "unit": _unit(kind),
                            "values": [{"timestamp": _iso(b), "value": sum(v) / len(v)} for b, v in sorted(buckets.items())]})
        return out

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.sample()
            except Exception:  # a sampler that dies silently would report "no data"; keep sampling
                pass


def _unit(kind: str) -> str:
    return {"cpu": "cpu", "cpu-limit": "cpu", "memory": "bytes", "memory-limit": "bytes", "http-requests": "count",
            "http-latency": "ms"}.get(kind, "")


class WriteLimit:
    """Fixed one-minute windows of writes per API key, as Render counts them."""

    def __init__(self, per_minute: int, window_s: int = 60):
        self.per_minute, self.window_s, self.window, self.used = per_minute, window_s, 0, 0
        self.lock = threading.Lock()

    def take(self, write: bool) -> tuple[bool, dict[str, str]]:
        now = int(time.time())
        with self.lock:
            if now // self.window_s != self.window:
                self.window, self.used = now // self.window_s, 0
            allowed = not write or self.used < self.per_minute
            if write and allowed:
                self.used += 1
            reset = self.window_s - now % self.window_s
            headers = {"Ratelimit-Limit": str(self.per_minute), "Ratelimit-Remaining": str(self.per_minute - self.used),
                       "Ratelimit-Reset": str(reset)}
        if not allowed:
            headers["Retry-After"] = str(reset)
        return allowed, headers


def make_app(settings: Settings, write_limit: int = 30, sample_every: float = 2.0, window_s: int = 60) -> Starlette:
    state_lock = threading.RLock()  # record_event takes it too, also from within
    sampler = Sampler(settings, sample_every)
    limit = WriteLimit(write_limit, window_s)
    stop = threading.Event()
    api_key = manager.render_api_key(settings)

    def load() -> dict:
        return manager.platform_state(settings)

    def save(state: dict) -> None:
        manager.save_platform_state(settings, state)

    def service(state: dict, sid: str = manager.RENDER_SERVICE_ID) -> dict:
        if sid == manager.FRONTEND_SERVICE_ID:  # a static site: built, published, no instances
            front = state["services"][sid]
            return {"id": sid, "name": "ai-api-playground-frontend", "type": "static_site",
                    "ownerId": manager.RENDER_OWNER_ID, "suspended": "not_suspended",
                    "serviceDetails": {"buildCommand": "npm ci && npm run build", "publishPath": "dist",
                                       "url": "https://ai-api-playground-frontend.onrender.invalid"},
                    "createdAt": front["created_at"], "updatedAt": front.get("updated_at", front["created_at"])}
        return {"id": manager.RENDER_SERVICE_ID, "name": "ai-api-playground-backend", "type": "web_service",
                "ownerId": manager.RENDER_OWNER_ID, "suspended": "not_suspended",
                "serviceDetails": {"numInstances": state["num_instances"], "plan": "starter",
                                   "autoscaling": state.get("autoscaling")},
                "createdAt": state["created_at"], "updatedAt": state.get("updated_at", state["created_at"])}

    def env_of(state: dict, sid: str) -> dict:
        return state["services"][sid]["env_vars"] if sid == manager.FRONTEND_SERVICE_ID else state["env_vars"]

    def deploys_of(state: dict, sid: str) -> list:
        return state["services"][sid]["deploys"] if sid == manager.FRONTEND_SERVICE_ID else state["deploys"]

    def web_only(handler):
        """What only a web service has (restart, scaling, instances): a static site gets Render's 400."""
        async def wrapped(request: Request) -> Response:
            if request.path_params.get("service_id") == manager.FRONTEND_SERVICE_ID:
                return _error(400, "bad_request", "not supported for static sites")
            return await handler(request)

        return wrapped

    def guarded(handler):
        async def wrapped(request: Request) -> Response:
            allowed, headers = limit.take(request.method in ("POST", "PUT", "PATCH", "DELETE"))
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {api_key}":
                return _error(401, "unauthorized", "unauthorized", headers)
            sid = request.path_params.get("service_id") or request.query_params.get("resource")
            if sid is not None and sid not in (manager.RENDER_SERVICE_ID, manager.FRONTEND_SERVICE_ID):
                return _error(404, "not_found", "service not found", headers)
            if not allowed:
                return _error(429, "rate_limit_exceeded", "rate limit exceeded", headers)
            response = await handler(request)
            response.headers.update(headers)
            return response

        return wrapped

    async def get_service(request: Request) -> Response:
        return JSONResponse(service(load(), request.path_params["service_id"]))

    async def list_services(request: Request) -> Response:
        """[{cursor, service}], cursor pagination (limit <= 100); name and type filters as Render's."""
        state, q = load(), request.query_params
        listed = [service(state, sid) for sid in (manager.RENDER_SERVICE_ID, manager.FRONTEND_SERVICE_ID)]
        listed = [x for x in listed if (not q.get("name") or x["name"] in q.getlist("name"))
                  and (not q.get("type") or x["type"] in q.getlist("type"))]
        cursor = q.get("cursor")
        begin = next((i + 1 for i, x in enumerate(listed) if x["id"] == cursor), 0) if cursor else 0
        limit_n = min(100, max(1, int(q.get("limit", 20))))
        return JSONResponse([{"cursor": x["id"], "service": x} for x in listed[begin:begin + limit_n]])

    async def env_vars(request: Request) -> Response:
        state = load()
        env = env_of(state, request.path_params["service_id"])
        items = [{"cursor": key, "envVar": {"key": key, "value": value}} for key, value in sorted(env.items())]
        cursor = request.query_params.get("cursor")
        if cursor:
            items = [i for i in items if i["cursor"] > cursor]
        limit_n = min(100, max(1, int(request.query_params.get("limit", 20))))
        return JSONResponse(items[:limit_n])

    async def env_var(request: Request) -> Response:
        key = request.path_params["key"]
        with state_lock:
            state = load()
            env = env_of(state, request.path_params["service_id"])
            if request.method == "GET":
                if key not in env:
                    return _error(404, "not_found", "env var not found")
                return JSONResponse({"key": key, "value": env[key]})
            if request.method == "DELETE":
                if env.pop(key, None) is None:
                    return _error(404, "not_found", "env var not found")
                save(state)
                return Response(status_code=204)
            body = await request.json()
            if body.get("generateValue"):
                value = secrets.token_urlsafe(32)
            elif isinstance(body.get("value"), str):
                value = body["value"]
            else:
                return _error(400, "bad_request", "value or generateValue is required")
            env[key] = value
            save(state)
        return JSONResponse({"key": key, "value": value})

    def record_event(type_: str, sid: str = manager.RENDER_SERVICE_ID, **details: Any) -> None:
        """An entry of the service's event list, as Render's GET /services/{id}/events lists them."""
        with state_lock:
            state = load()
            events = state.setdefault("events", [])
            events.append({"id": "evt-" + secrets.token_hex(10), "timestamp": _iso(time.time()),
                           "serviceId": sid, "type": type_, "details": details})
            del events[:-500]
            save(state)

    def restart_processes() -> bool:
        live = []

        def went_live(healthy: bool) -> None:  # the restart is done once the new instances serve (the old drain)
            live.append(healthy)
            record_event("server_restarted" if healthy else "server_failed",
                         **({} if healthy else {"reason": "new instances not healthy; no earlier instance to keep"}))

        healthy = manager.replace_backend(settings, wait=20, on_live=went_live)  # answered within the client's 30 s
        if not live:
            record_event("server_failed", reason="new instances not healthy; the previous ones kept serving")
        return healthy

    async def restart(request: Request) -> Response:
        await run_in_threadpool(restart_processes)
        return Response(status_code=200)

    async def events(request: Request) -> Response:
        """Newest first, [{cursor, event}], cursor pagination (limit <= 100); startTime / endTime filter."""
        q = request.query_params
        start, end = _parse_time(q.get("startTime"), 0), _parse_time(q.get("endTime"), time.time() + 1)
        sid = request.path_params["service_id"]
        listed = sorted((e for e in load().get("events", []) if start <= _parse_time(e["timestamp"], 0) <= end
                         and e.get("serviceId", manager.RENDER_SERVICE_ID) == sid),
                        key=lambda e: e["timestamp"], reverse=True)
        cursor = q.get("cursor")
        begin = next((i + 1 for i, e in enumerate(listed) if e["id"] == cursor), 0) if cursor else 0
        limit_n = min(100, max(1, int(q.get("limit", 20))))
        return JSONResponse([{"cursor": e["id"], "event": e} for e in listed[begin:begin + limit_n]])

    def run_deploy(deploy_id: str, sid: str) -> None:
        def set_status(status: str) -> None:
            with state_lock:
                state = load()
                for d in deploys_of(state, sid):
                    if d["id"] == deploy_id:
                        d.update(status=status, updatedAt=_iso(time.time()),
                                 **({"finishedAt": _iso(time.time())} if status in ("live", "update_failed") else {}))
                save(state)

        set_status("update_in_progress")
        record_event("deploy_started", sid, deployId=deploy_id)
        if sid == manager.FRONTEND_SERVICE_ID:  # a static site: built with its env vars and published
            time.sleep(0.5)
            status = "live"
        else:
            status = "live" if restart_processes() else "update_failed"
        set_status(status)
        record_event("deploy_ended", sid, deployId=deploy_id, status=status)

    async def deploys(request: Request) -> Response:
        if request.method == "GET":  # newest first, as [{deploy, cursor}], cursor pagination (limit <= 100)
            limit = min(100, int(request.query_params.get("limit", 20)))
            newest = sorted(deploys_of(load(), request.path_params["service_id"]), key=lambda d: d["createdAt"],
                            reverse=True)
            cursor = request.query_params.get("cursor")
            start = next((i + 1 for i, d in enumerate(newest) if d["id"] == cursor), 0) if cursor else 0
            return JSONResponse([{"cursor": d["id"], "deploy": d} for d in newest[start:start + limit]])
        body = await request.json() if (await request.body()) else {}
        return start_deploy("api", body.get("deployMode", "build_and_deploy"), request.path_params["service_id"])

    async def rollback(request: Request) -> Response:
        body = await request.json() if (await request.body()) else {}
        target = next((d for d in load()["deploys"] if d["id"] == body.get("deployId")), None)
        if target is None:
            return _error(404, "not_found", "deploy not found")
        return start_deploy("rollback", target.get("deployMode", "build_and_deploy"), rollbackOf=target["id"])

    def start_deploy(trigger: str, mode: str, sid: str = manager.RENDER_SERVICE_ID, **extra: str) -> Response:
        """A new deploy recorded and run (really restarting the backend) in the background; 201 with it."""
        now = _iso(time.time())
        deploy = {"id": "dep-" + secrets.token_hex(10), "status": "build_in_progress", "trigger": trigger, **extra,
                  "deployMode": mode, "createdAt": now, "startedAt": now, "updatedAt": now, "finishedAt": None}
        with state_lock:
            state = load()
            deploys_of(state, sid).append(deploy)
            save(state)
        threading.Thread(target=run_deploy, args=(deploy["id"], sid), daemon=True).start()
        return JSONResponse(deploy, status_code=201)

    async def deploy(request: Request) -> Response:
        found = next((d for d in deploys_of(load(), request.path_params["service_id"])
                      if d["id"] == request.path_params["deploy_id"]), None)
        return JSONResponse(found) if found else _error(404, "not_found", "deploy not found")

    async def scale(request: Request) -> Response:
        body = await request.json()
        n = body.get("numInstances")
        if not isinstance(n, int) or not 1 <= n <= 10:
            return _error(400, "bad_request", "numInstances must be an integer from 1 to 10")
        with state_lock:
            state = load()
            before, state["num_instances"] = state["num_instances"], n
            save(state)
        record_event("instance_count_changed", fromInstances=before, toInstances=n)
        await run_in_threadpool(restart_processes)
        return Response(status_code=202)

    async def autoscaling(request: Request) -> Response:
        with state_lock:
            state = load()
            if request.method == "DELETE":
                state["autoscaling"] = None
                save(state)
                record_event("autoscaling_config_changed", enabled=False)
                return Response(status_code=204)
            body = await request.json()
            if not isinstance(body.get("min"), int) or not isinstance(body.get("max"), int) or body["min"] > body["max"]:
                return _error(400, "bad_request", "min and max must be integers with min <= max")
            state["autoscaling"] = body
            save(state)
        record_event("autoscaling_config_changed", enabled=bool(body.get("enabled", True)), min=body["min"],
                     max=body["max"])
        return JSONResponse(body)

    async def instances(request: Request) -> Response:
        return JSONResponse([{"id": f"{manager.RENDER_SERVICE_ID}-{pid}", "createdAt": None}
                             for pid in sampler.processes()])

    async def metrics(request: Request) -> Response:
        kind = request.path_params["kind"]
        q = request.query_params
        end = float(q.get("endTime", time.time()))
        start = float(q.get("startTime", end - 3600))
        resolution = max(1.0, float(q.get("resolutionSeconds", 60)))
        if kind in ("cpu", "memory"):
            return JSONResponse(sampler.series(kind, start, end, resolution))
        if kind in ("cpu-limit", "memory-limit"):
            value = CPU_LIMIT if kind == "cpu-limit" else MEMORY_LIMIT
            return JSONResponse([{"labels": [], "unit": _unit(kind), "values": [{"timestamp": _iso(end), "value": value}]}])
        if kind in ("http-requests", "http-latency"):
            rows = await run_in_threadpool(_http_series, settings, kind, start, end, resolution,
                                           float(q.get("quantile", 0.95)))
            return JSONResponse([{"labels": [], "unit": _unit(kind),
                                  "values": [{"timestamp": _iso(ts), "value": v} for ts, v in rows]}])
        return _error(404, "not_found", f"unknown metric {kind}")

    async def logs(request: Request) -> Response:
        q = request.query_params
        if not q.get("ownerId") or not q.get("resource"):
            return _error(400, "bad_request", "ownerId and resource are required")
        if q["ownerId"] != manager.RENDER_OWNER_ID:
            return _error(404, "not_found", "owner not found")
        end = _parse_time(q.get("endTime"), time.time())
        start = _parse_time(q.get("startTime"), end - 3600)
        limit_n = min(100, max(1, int(q.get("limit", 20))))
        lines = [line for line in _log_lines(settings) if start <= line["ts"] < end
                 and (not q.get("level") or line["level"] == q["level"])
                 and (not q.get("text") or q["text"] in line["message"])]
        lines.sort(key=lambda line: line["ts"], reverse=True)
        page, more = lines[:limit_n], len(lines) > limit_n
        body: dict[str, Any] = {"hasMore": more, "logs": [
            {"id": line["id"], "message": line["message"], "timestamp": _iso(line["ts"]),
             "labels": [{"name": "level", "value": line["level"]}, {"name": "type", "value": "app"},
                        {"name": "instance", "value": f"{manager.RENDER_SERVICE_ID}-{line['pid']}"}]} for line in page]}
        if more:
            body.update(nextStartTime=_iso(start), nextEndTime=_iso(page[-1]["ts"]))
        return JSONResponse(body)

    async def inject(request: Request) -> Response:
        body = await request.json()
        if body.get("kind") not in ("cpu", "memory"):
            return _error(400, "bad_request", "kind must be cpu or memory")
        sampler.inject(body["kind"], None if body.get("clear") else float(body["value"]),
                       body.get("instance") or f"{manager.RENDER_SERVICE_ID}-injected", body.get("timestamp"))
        return JSONResponse({"ok": True})

    # sampled from the start (a mounted app's lifespan would not run); a daemon thread ends with the process
    threading.Thread(target=sampler.run, args=(stop,), daemon=True).start()
    s = "/services/{service_id}"
    return Starlette(routes=[
        Route("/services", guarded(list_services)),
        Route(s, guarded(get_service)),
        Route(f"{s}/env-vars", guarded(env_vars)),
        Route(f"{s}/env-vars/{{key}}", guarded(env_var), methods=["GET", "PUT", "DELETE"]),
        Route(f"{s}/restart", guarded(web_only(restart)), methods=["POST"]),
        Route(f"{s}/deploys", guarded(deploys), methods=["GET", "POST"]),
        Route(f"{s}/deploys/{{deploy_id}}", guarded(deploy)),
        Route(f"{s}/rollback", guarded(web_only(rollback)), methods=["POST"]),
        Route(f"{s}/scale", guarded(web_only(scale)), methods=["POST"]),
        Route(f"{s}/autoscaling", guarded(web_only(autoscaling)), methods=["PUT", "DELETE"]),
        Route(f"{s}/instances", guarded(web_only(instances))),
        Route(f"{s}/events", guarded(events)),
        Route("/metrics/{kind}", guarded(metrics)),
        Route("/logs", guarded(logs)),
        Route("/sandbox/metrics", guarded(inject), methods=["POST"]),
    ])


def _parse_time(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _log_lines(settings: Settings) -> list[dict]:
    """The backend's JSON log lines (its other output, uvicorn's, is not application logging)."""
    path = manager.state_dir(settings) / "backend.log"
    lines = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for number, raw in enumerate(text.splitlines()):
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
            ts = datetime.fromisoformat(entry["timestamp"]).timestamp()
        except (ValueError, KeyError):
            continue
        lines.append({"id": f"log-{number}", "ts": ts, "level": entry.get("level", "info"),
                      "message": entry.get("message", ""), "pid": entry.get("pid", 0)})
    return lines


def _http_series(settings: Settings, kind: str, start: float, end: float, resolution: float,
                 quantile: float) -> list[tuple[float, float]]:
    value = "count(*)" if kind == "http-requests" else "percentile_cont(%(q)s) WITHIN GROUP (ORDER BY latency_ms)"
    sql = (f"SELECT extract(epoch FROM date_bin(make_interval(secs => %(res)s), created_at, to_timestamp(0))), {value} "
           "FROM requests WHERE created_at >= to_timestamp(%(start)s) AND created_at < to_timestamp(%(end)s) "
           "GROUP BY 1 ORDER BY 1")
    with psycopg.connect(manager.database_url(settings), connect_timeout=5) as conn:
        return [(float(ts), float(v)) for ts, v in conn.execute(sql, {"res": resolution, "start": start, "end": end,
                                                                      "q": quantile}).fetchall()]
