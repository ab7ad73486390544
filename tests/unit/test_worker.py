"""The draining worker starts without a warning and leaves Prefect's own process worker in place."""

import subprocess
import sys


def test_loading_the_draining_worker_warns_nothing_and_replaces_no_prefect_worker_type():
    code = ("import playground_ops.worker as w\n"
            "from prefect.utilities.dispatch import lookup_type\n"
            "from prefect.workers.base import BaseWorker\n"
            "from prefect.workers.process import ProcessWorker\n"
            "assert lookup_type(BaseWorker, 'process') is ProcessWorker\n"
            "assert w.DrainingProcessWorker.type == 'process'\n")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
