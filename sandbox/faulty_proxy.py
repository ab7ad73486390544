"""A fault-injecting HTTP proxy for the S3 stand-in: fails chosen requests the way a real store sometimes does.

Rules name a request kind (`upload-part`, `put`, `get`, `post`, `any`), what to do (`500`, `503`, `reset` (the
connection closed before the request goes on), `drip` (the upstream's answer sent one byte every `drip_seconds`, as a
dying server or a slow link does) or `late` (the request goes on and is done, its answer held `late_seconds`, longer
than the client waits: the answer is lost) or `freeze` (the upstream's process stopped with SIGSTOP just before the
request goes on, and continued `freeze_seconds` later, as a platform frozen mid-call: the request waits in its socket
and is done when it wakes, as is every other request meanwhile)) and how often:
`skip` requests of that kind pass first, then `count` of them fail (-1: all). Used by the tests of the backup pipeline.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Fault:
    kind: str
    action: str
    count: int = 1
    skip: int = 0
    seen: int = 0
    fired: int = 0


def _kind(method: str, path: str) -> str:
    if method == "PUT" and "partNumber=" in path:
        return "upload-part"
    return {"PUT": "put", "GET": "get", "POST": "post"}.get(method, method.lower())


class FaultyProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.drip_seconds = 2.0
        self.late_seconds = 30.0
        self.freeze_pid: int | None = None  # the upstream's process, for `freeze`
        self.freeze_seconds = 20.0
        self.frozen: list[float] = []  # when each freeze began (time.monotonic())
        self._timers: list[threading.Timer] = []
        self.abandoned = 0  # dripping answers the client gave up on
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                action = proxy._decide(self.command, self.path)
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if action in ("500", "503"):
                    payload = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(int(action))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "drip":
                    return self._drip(body)
                if action == "freeze":
                    proxy._freeze()
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if action == "late":  # done upstream; the answer comes after the client has given up
                    time.sleep(proxy.late_seconds)
                    self.close_connection = True
                conn.close()
                try:
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # the client gave up waiting
                    with proxy.lock:
                        proxy.abandoned += 1
                    self.close_connection = True

            def _drip(self, body: bytes) -> None:
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                conn.request(self.command, self.path, body=body, headers={"Host": proxy.upstream.netloc})
                response = conn.getresponse()
                data = response.read()
                conn.close()
                raw = (f"HTTP/1.1 {response.status} {response.reason}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data
                self.close_connection = True
                for i in range(len(raw)):  # until the client gives up (a closed socket) or every byte is out
                    try:
                        self.wfile.write(raw[i:i + 1])
                        self.wfile.flush()
                    except OSError:
                        with proxy.lock:
                            proxy.abandoned += 1
                        return
                    time.sleep(proxy.drip_seconds)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _decide(self, method: str, path: str) -> str | None:
        kind = _kind(method, path)
        with self.lock:
            for fault in self.faults:
                if fault.kind in (kind, "any"):
                    fault.seen += 1
                    if fault.seen > fault.skip and (fault.count < 0 or fault.fired < fault.count):
                        fault.fired += 1
                        return fault.action
        return None

    def _freeze(self) -> None:
        """SIGSTOP the upstream's process now; SIGCONT it freeze_seconds later."""
        assert self.freeze_pid, "a freeze needs freeze_pid: the upstream's process"
        os.kill(self.freeze_pid, signal.SIGSTOP)
        with self.lock:
            self.frozen.append(time.monotonic())
            timer = threading.Timer(self.freeze_seconds, self._thaw)
            self._timers.append(timer)
        timer.start()

    def _thaw(self) -> None:
        if self.freeze_pid:
            try:
                os.kill(self.freeze_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def inject(self, kind: str, action: str, count: int = 1, skip: int = 0) -> Fault:
        fault = Fault(kind, action, count, skip)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def close(self) -> None:
        for timer in self._timers:  # never leave the upstream stopped
            timer.cancel()
        self._thaw()
        self.server.shutdown()
