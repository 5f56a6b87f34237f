"""`fmops ui` owns the Dagster processes it starts: a signal to it stops the webserver, the daemon and the
code servers, and nothing survives it."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ui(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"fmops ui exited early with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the UI did not answer on port {port} within {timeout}s")


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_fmops_ui_stops_every_process_it_started(tmp_path, sig):
    port = free_port()
    env = {**os.environ, "FMOPS_HOME": str(tmp_path / "home"), "FMOPS_ASSETS_DIR": str(REPO / "assets")}
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
