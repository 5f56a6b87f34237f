"""The local production stack, for real: deploy/local/start.sh starts an MLflow server on PostgreSQL and
two Celery workers on the local RabbitMQ (results in Redis); fmops runs on a Postgres-backed Dagster
instance with the Celery executor. Two lifecycles of different tasks at once (their training steps kept
apart by the instance's training pool), then a multi-partition batch
inference; a worker process killed with kill -9 mid-step has its step run again elsewhere; stop.sh stops
everything by PID. Outputs equal those of the embedded default (the session's finished small run)."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest

from tests.conftest import REPO, final_outputs, small_run_env, small_sms_spec, write_task
from tests.processes import alive, free_port, missing_service

pytestmark = pytest.mark.integration
SKIP = missing_service("PostgreSQL", "RabbitMQ", "Redis")
if SKIP is None:
    try:
        import dagster_celery  # noqa: F401
        import psycopg2
    except ImportError:
        SKIP = "the postgres and celery extras are not installed (pip install -e .[postgres,celery])"


def sh(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(REPO / "deploy" / "local" / script), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def cli(env: dict, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fmops_pipelines.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return err


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack's environment as deploy/local/env.sh sets it, on fresh databases and its own queue."""
    if SKIP:
        pytest.skip(SKIP)
    root = tmp_path_factory.mktemp("stack")
    tag = uuid.uuid4().hex[:8]
    env = {**small_run_env(root, root / "home"), "FMOPS_STACK_DIR": str(root / "stack"),
           "DAGSTER_PG_DB": f"fmops_it_dg_{tag}", "FMOPS_MLFLOW_DB": f"fmops_it_ml_{tag}",
           "FMOPS_MLFLOW_PORT": str(free_port()), "FMOPS_CELERY_QUEUE": f"fmops-it-{tag}",
           "FMOPS_BIN": str(REPO / ".venv" / "bin") if (REPO / ".venv").exists() else os.path.dirname(sys.executable)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "FMOPS_EXECUTOR", "FMOPS_CELERY_BROKER",
                 "FMOPS_CELERY_BACKEND"):
        env.pop(name, None)
    # a second task on the same data (other split seed): its run shares the workers with sms_spam's
    write_task(root / "assets", "sms_spam_b", small_sms_spec(
        fixed_method=True, splits={"dev_size": 60, "test_fraction": 0.25, "seed": 1, "max_rows": 700},
        gates=[{"metric": "test_macro_f1", "min": 0.5}]))
    printed = subprocess.run(["bash", "-c", f"source {REPO}/deploy/local/env.sh && env -0"], env=env,
                             capture_output=True, check=True).stdout.decode()
    env = dict(line.split("=", 1) for line in printed.split("\0") if "=" in line)
    try:
        sh("start.sh", env, "--workers", "2", "--no-ui")
        pids = {p.stem: int(p.read_text()) for p in (root / "stack" / "pids").glob("*.pid")}
        yield root, env, pids
        sh("stop.sh", env)
        assert alive(list(pids.values())) == []
        assert not list((root / "stack" / "pids").glob("*.pid"))
    finally:  # also when start.sh failed half way: nothing left running, no databases left behind
        subprocess.run(["bash", str(REPO / "deploy" / "local" / "stop.sh")], env=env, capture_output=True, check=False)
        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
        admin.autocommit = True
        for db in (env["DAGSTER_PG_DB"], env["FMOPS_MLFLOW_DB"]):
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


def query(env: dict, sql: str, *params) -> list[tuple]:
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=env["DAGSTER_PG_DB"]) as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall()


def celery_workers(env: dict) -> set[str]:
    """The Celery workers that ran steps, from the engine events dagster-celery stores with each step."""
    rows = query(env, "SELECT event FROM event_logs WHERE dagster_event_type = 'ENGINE_EVENT' "
                      "AND event LIKE '%%in celery worker%%'")
    names = set()
    for (event,) in rows:
        data = json.loads(event)["dagster_event"]["event_specific_data"]
        names |= {e["entry_data"]["text"] for e in data["metadata_entries"] if e["label"] == "Celery worker"}
    return names


def test_two_lifecycles_at_once_on_celery_workers_equal_the_embedded_run(stack, finished_small_run):
    root, env, _ = stack
    first, second = cli(env, "run", "sms_spam"), cli(env, "run", "sms_spam_b")
    console = finish(first)
    finish(second)
    assert "[ok ] sms_spam/specialist" in console
    assert not (root / "home" / "dagster").exists()  # the embedded instance was not used
    runs = sorted(query(env, "SELECT pipeline_name, status FROM runs"))
    assert runs == [("sms_spam_b_lifecycle", "SUCCESS"), ("sms_spam_lifecycle", "SUCCESS")]
    materialized = query(env, "SELECT asset_key, count(*) FROM event_logs WHERE dagster_event_type = "
                              "'ASSET_MATERIALIZATION' GROUP BY asset_key")
    assert len(materialized) == 22 and {n for _, n in materialized} == {1}  # 11 assets per task, once each
    assert len(celery_workers(env)) == 2  # both workers ran steps
    # the fmops_training pool (limit 1, set by start.sh) kept the two runs' training steps from overlapping
    rows = query(env, "SELECT run_id, step_key, dagster_event_type, extract(epoch FROM timestamp) FROM event_logs "
                      "WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') AND (step_key LIKE %s OR "
                      "step_key LIKE %s)", "%\\_\\_label\\_model", "%\\_\\_specialist")
    spans = {}
    for run_id, step, kind, at in rows:
        spans.setdefault((run_id, step), {})[kind] = float(at)
    intervals = sorted((s["STEP_START"], s["STEP_SUCCESS"]) for s in spans.values())
    assert len(intervals) == 4 and all(a[1] <= b[0] for a, b in itertools.pairwise(intervals))
    assert query(env, "SELECT concurrency_key, count(*) FROM concurrency_slots GROUP BY 1 ORDER BY 1") == [
        ("fmops_fm", 2), ("fmops_training", 1)]
    assert final_outputs(root / "home") == final_outputs(finished_small_run[0] / "home")  # nothing mixed

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    for task in ("sms_spam", "sms_spam_b"):
        assert client.get_model_version_by_alias(f"{task}-specialist", "champion").version == "1"
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=env["FMOPS_MLFLOW_DB"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT name, alias FROM registered_model_aliases ORDER BY name")
        assert cur.fetchall() == [("sms_spam-specialist", "champion"), ("sms_spam_b-specialist", "champion")]


def test_partitions_spread_over_workers_and_a_killed_worker_s_step_runs_again(stack, finished_small_run, tmp_path):
    root, env, pids = stack
    sms = pd.read_csv(REPO.parent / "shared" / "datasets" / "sms_spam_uci" / "SMSSpamCollection", sep="\t",
                      header=None, names=["label", "text"], quoting=3)
    inbox = root / "home" / "inbox" / "sms_spam"
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        sms.iloc[i * 1000:(i + 1) * 1000][["text"]].to_csv(inbox / f"part{i}.csv", index_label="id")
    console = finish(cli(env, "batch", "sms_spam"))
    assert "scored 3 of 3 partition(s)" in console
    spread = query(env, "SELECT count(DISTINCT run_id) FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS' "
                        "AND step_key = 'sms_spam__batch_predictions'")
    assert spread == [(3,)]

    # the same predictions as the embedded default's champion scoring the same file
    embedded = tmp_path / "embedded.parquet"
    done = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "predict", "sms_spam", "--input",
                           str(inbox / "part0.csv"), "--output", str(embedded), "--batch-size", "4096",
                           "--workers", "1"], cwd=REPO, env=finished_small_run[1], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    ours = pd.read_parquet(root / "home" / "predictions" / "sms_spam" / "part0.csv.parquet")
    theirs = pd.read_parquet(embedded)
    assert ours["label"].tolist() == theirs["label"].tolist()
    assert (ours["p_spam"] - theirs["p_spam"]).abs().max() < 1e-6

    # kill -9 the worker process running a partition's step: the broker hands the step to a worker again
    # ~560k rows: several seconds of scoring on one process even with the compiled scorer (223k rows took ~1.5 s,
    # finishing before the kill below could land)
    pd.concat([sms[["text"]]] * 100, ignore_index=True).to_csv(inbox / "big.csv", index_label="id")
    before = query(env, "SELECT coalesce(max(id), 0) FROM event_logs")[0][0]
    proc = cli(env, "batch", "sms_spam", "--partition", "big.csv")
    deadline = time.time() + 300
    started = []
    while not started and time.time() < deadline and proc.poll() is None:
        started = query(env, "SELECT event FROM event_logs WHERE id > %s AND dagster_event_type = 'STEP_START'",
                        before)
        time.sleep(0.05)
    assert started, "the big partition's step never started"
    step_pid = json.loads(started[0][0])["dagster_event"]["pid"]
    assert step_pid not in pids.values()  # a worker's pool process, not the worker itself
    time.sleep(1)
    os.kill(step_pid, signal.SIGKILL)
    finish(proc)
    starts = query(env, "SELECT count(*) FROM event_logs WHERE id > %s AND dagster_event_type = 'STEP_START'", before)
    assert starts == [(2,)]  # killed once, run again
    out = pd.read_parquet(root / "home" / "predictions" / "sms_spam" / "big.csv.parquet")
    assert len(out) == 100 * len(sms) and out["id"].is_unique  # exactly one output per row
    assert sorted(pids) == ["mlflow", "worker1", "worker2"] and len(alive(list(pids.values()))) == 3
