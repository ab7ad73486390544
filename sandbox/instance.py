"""One instance of the sandbox backend, as a platform runs it behind its load balancer: an ASGI app on the service's
public port, shared with the other instances through SO_REUSEPORT, plus a private port of its own on which the
platform checks this instance's health before it takes traffic.

    python -m sandbox.instance APP PORT RUN_DIR

Started, it serves only its private port and writes RUN_DIR/<pid>.json {"pid", "private_port", "public": false}.
On SIGUSR1 it starts accepting on the public port too ({"public": true}). On SIGTERM it stops accepting on the
public port first, keeps serving for DRAIN_S what it already accepted (a connection accepted just before must still
get its answer), then shuts down as uvicorn does: requests in flight finish. Connections still waiting in its accept
queue move to the other instances when net.ipv4.tcp_migrate_req is 1 (Linux >= 5.14).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

DRAIN_S = 1.0


def _socket(port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(False)
    return sock


class Instance(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, public_port: int, record: Path):
        super().__init__(config)
        self.public_port, self.record, self.public = public_port, record, None

    def _write(self, **fields) -> None:
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), **fields}))
        tmp.replace(self.record)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        private_port = sockets[0].getsockname()[1]
        self._write(private_port=private_port, public=False)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(self._go_public(private_port)))

    async def _go_public(self, private_port: int) -> None:
        if self.public is not None or self.should_exit:
            return
        config = self.config
        protocol = functools.partial(config.http_protocol_class, config=config, server_state=self.server_state,
                                     app_state=self.lifespan.state)
        sock = _socket(self.public_port, reuse_port=True)
        self.public = await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=config.backlog)
        self._write(private_port=private_port, public=True)

    async def shutdown(self, sockets=None) -> None:
        if self.public is not None:  # stop taking new connections here; the other instances take them
            self.public.close()
            await asyncio.sleep(DRAIN_S)
        await super().shutdown(sockets=sockets)


def main(app: str, port: int, run_dir: Path) -> None:
    record = run_dir / f"{os.getpid()}.json"
    config = uvicorn.Config(app, access_log=False, log_level="info", timeout_graceful_shutdown=30)
    config.load()
    server = Instance(config, port, record)
    try:
        server.run(sockets=[_socket(0, reuse_port=False)])
    finally:
        record.unlink(missing_ok=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
