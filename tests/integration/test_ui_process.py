"""`fmops ui` owns the Dagster processes it starts: a signal to it stops the webserver, the daemon and the
code servers, and nothing survives it."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO
from tests.processes import alive, free_port, wait_for_ui

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_fmops_ui_stops_every_process_it_started(tmp_path, sig):
    port = free_port()
    env = {**os.environ, "FMOPS_HOME": str(tmp_path / "home"), "FMOPS_ASSETS_DIR": str(REPO / "assets"),
           "FMOPS_REPORTS_URL": f"http://localhost:{free_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "fmops_pipelines.cli", "ui", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ui(port, proc)
        tree = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(tree) >= 3  # dg dev, the webserver, the daemon (and code servers)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        deadline = time.time() + 15
        while alive(tree) and time.time() < deadline:
            time.sleep(0.2)
        assert alive(tree) == []
    finally:
        if proc.poll() is None:
            proc.kill()
