"""`playground-ops worker`: Prefect's process worker with a drain. On SIGTERM (what `systemctl stop` and Kubernetes
send) or Ctrl-C it stops taking runs at once and exits when the runs it started have finished, or when the drain time
is over (a run still going then is left to the lost-run automation). `prefect worker start` instead stops at once and
takes its runs' processes down with it."""

from __future__ import annotations

import asyncio
import signal
import time

from prefect.workers.process import ProcessWorker

DRAIN_SECONDS = 900  # the README's drain time: every runbook here but a backup or restore of a large database


class DrainingProcessWorker(ProcessWorker):
    """A process worker that can be told to take no more runs while the ones it runs finish."""

    draining = False

    @classmethod
    def __dispatch_key__(cls) -> str:
        """Its own key in Prefect's registry of worker types: registered under `process` (its `type`, which the work
        pool must match), it would replace Prefect's own process worker there, with a warning at every start."""
        return "playground-ops-draining-process"

    async def get_and_submit_flow_runs(self):
        if self.draining:
            return []
        return await super().get_and_submit_flow_runs()

    def running(self) -> int:
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0


async def run_worker(pool: str, name: str | None, limit: int, drain_seconds: float,
                     work_queues: list[str] | None = None, printer=print) -> int:
    """Run the worker until a stop signal, then drain; returns how many runs were still going when it stopped."""
    worker = DrainingProcessWorker(work_pool_name=pool, name=name, limit=limit, work_queues=work_queues)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(worker.start(printer=printer))
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():  # the worker ended by itself (its API unreachable, for instance)
        waiting.cancel()
        serving.result()
        return 0
    worker.draining = True
    printer(f"Worker {worker.name!r} draining: no new runs; waiting up to {drain_seconds:.0f} s for "
            f"{worker.running()} running")
    deadline = time.monotonic() + drain_seconds
    while worker.running() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    left = worker.running()
    if left:
        printer(f"Worker {worker.name!r}: the drain time is over with {left} run(s) still going; they end with this "
                "worker and the lost-run automation will mark them Crashed")
    serving.cancel()
    try:
        await serving
    except asyncio.CancelledError:
        pass
    printer(f"Worker {worker.name!r} drained and stopped")
    return left
