"""Run a long-lived child (the Dagster webserver + daemon) as a process tree that fmops owns: SIGINT or
SIGTERM to fmops stops the child and every process under it, and nothing outlives fmops.

`dg dev` starts a code server, a gRPC server, the webserver and the daemon; on a signal it does not
always take all of them down. The child gets its own session (process group); on the way out every
descendant seen (a snapshot taken before signalling, since orphans leave the tree) and the whole group
get SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess

import psutil

GRACE_SECONDS = 10.0


def stop_tree(root_pid: int, grace: float = GRACE_SECONDS) -> None:
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    try:
        os.killpg(root_pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(root_pid, signal.SIGKILL)  # anything in the group that was not in the snapshot
    except (ProcessLookupError, PermissionError):
        pass


def run_owned(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run `cmd` until it exits or fmops is told to stop; returns its exit code (0 when stopped by a signal)."""
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopped = False

    def on_signal(signum, frame) -> None:
        nonlocal stopped
        stopped = True
        stop_tree(child.pid)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        stop_tree(child.pid, grace=2.0)  # the child may have exited and left its own children behind
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopped else code
