"""Helpers for tests that start `fmops ui`: a free port, waiting for the UI to answer, processes still alive."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import psutil


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


LOCAL_SERVICES = {"PostgreSQL": 5432, "RabbitMQ": 5672, "Redis": 6379}


def missing_service(*names: str) -> str | None:
    """A one-line reason to skip when one of the named localhost services does not answer, else None."""
    for name in names:
        try:
            with socket.create_connection(("127.0.0.1", LOCAL_SERVICES[name]), timeout=2):
                pass
        except OSError:
            return f"{name} does not answer on 127.0.0.1:{LOCAL_SERVICES[name]}"
    return None
