"""`kill -9` of `fmops run` during FM labeling, then of its re-run during training: neither killed run stays
STARTED forever (the next launch marks it failed), and the last run succeeds, paying only for FM answers
not cached before and resuming training from the killed run's last epoch checkpoint, with the same final
outputs as an uninterrupted run. A second run on the same embedded FMOPS_HOME fails at once with one line
instead of interleaving writes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import dagster as dg
import pytest

from fmops_pipelines import paths
from fmops_pipelines.launcher import stored
from tests.conftest import REPO, final_outputs, small_run_env

pytestmark = pytest.mark.integration


def cached_answers(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


CMD = [sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_spam"]


def kill_9_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL `proc` as soon as `ready()` holds (polled every 5 ms)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_during_labeling_then_during_training_then_a_rerun_equals_an_uninterrupted_run(
        tmp_path, monkeypatch, finished_small_run):
    home = tmp_path / "home"
    env = small_run_env(tmp_path, home, own_fm_cache=True)  # cold: the first kill must land while the FM is asked
    monkeypatch.setenv("FMOPS_HOME", str(home))
    monkeypatch.delenv("FMOPS_FM_CACHE")
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    checkpoints = home / "checkpoints" / "sms_spam"

    first = subprocess.Popen(CMD, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_9_when(first, lambda: cached_answers(paths.fm_cache_path()) > 0)
    cached_before = cached_answers(paths.fm_cache_path())
    assert cached_before > 0 and stored("sms_spam", "evaluation") is None  # killed during labeling
    instance = dg.DagsterInstance.get()
    (killed,) = instance.get_runs()
    assert killed.status == dg.DagsterRunStatus.STARTED  # what Dagster alone would show forever

    second = subprocess.Popen(CMD, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_9_when(second, lambda: bool(list(checkpoints.glob("*.pt"))))  # after the specialist's first epoch
    assert list(checkpoints.glob("*.pt")), "the run finished training before it could be killed"
    note = f"note: marked run {killed.run_id[:8]} (sms_spam_lifecycle) failed: its process {first.pid} is gone"
    assert note in second.stderr.read()
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE

    rerun = subprocess.run(CMD, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"its process {second.pid} is gone" in rerun.stderr  # the run killed in training, marked failed
    event = instance.get_latest_materialization_event(dg.AssetKey(["sms_spam", "specialist"]))
    assert event.asset_materialization.metadata["resumed_after_epoch"].value >= 1  # from the checkpoint
    assert not list(checkpoints.glob("*.pt"))  # removed once training completed
    labeling = stored("sms_spam", "evaluation")["labeling"]
    assert labeling["fm_calls"] <= cached_answers(paths.fm_cache_path()) - cached_before  # nothing asked twice
    assert final_outputs(home) == final_outputs(finished_small_run[0] / "home")


def test_a_second_run_on_the_same_embedded_home_fails_at_once_with_one_line(tmp_path):
    home = tmp_path / "home"
    env, cmd = small_run_env(tmp_path, home), CMD
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock, deadline = home / "run.lock", time.time() + 120
        while (lock.read_text() if lock.is_file() else "") != str(first.pid):
            assert time.time() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.1)
        second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"error: {home}: another fmops run (pid {first.pid}) is using this FMOPS_HOME; its SQLite instance takes "
            "one run at a time: wait for it, or use a Postgres DAGSTER_HOME (deploy/postgres)")
    finally:
        first.kill()
        first.wait()
