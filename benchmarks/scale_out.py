"""Scale-out of batch inference over Celery workers, measured in one run: the same multi-partition batch
(`fmops batch` on the Postgres instance, steps on workers over RabbitMQ) with 1 and then 2 workers.

Starts its own local stack (deploy/local/start.sh: MLflow server on Postgres, workers, own databases and
queue) in a temporary folder, trains a champion on a small sms_spam slice through the stack, writes P inbox
files of R rows each (SMS texts repeated), scores them all with 1 worker, then again with 2, and stops
the stack. Needs PostgreSQL, RabbitMQ and Redis on localhost (the same as the tests).

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/scale_out.py [--partitions 8 --rows 400000]

Prints, for each worker count: wall seconds of `fmops batch` end to end (orchestrating processes
included), rows/s end to end, and rows/s over the span the steps ran (first step start to last step end,
from the event log), then the 2-vs-1 ratios. Target on 2 cores: >= 1.7x. Each worker is one process with
one math thread (FMOPS_WORKER_THREADS=1): a worker per core, as deploy/README.md lays out for N machines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def sh(script: str, env: dict, *args: str) -> None:
    subprocess.run(["bash", str(REPO / "deploy" / "local" / script), *args], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def fmops(env: dict, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"fmops {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def step_span(env: dict, after_id: int) -> float:
    """Seconds from the first batch step's start to the last one's success, as the event log has them."""
    import psycopg2

    with psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
                          dbname=env["DAGSTER_PG_DB"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT extract(epoch FROM max(timestamp) FILTER (WHERE dagster_event_type = 'STEP_SUCCESS') "
                    "- min(timestamp) FILTER (WHERE dagster_event_type = 'STEP_START')) FROM event_logs "
                    "WHERE id > %s AND step_key LIKE %s", (after_id, "%batch_predictions"))
        return float(cur.fetchone()[0])


def last_event_id(env: dict) -> int:
    import psycopg2

    with psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
                          dbname=env["DAGSTER_PG_DB"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT coalesce(max(id), 0) FROM event_logs")
        return int(cur.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rows", type=int, default=400_000, help="rows per partition")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fmops-scale-out-"))
    tag = uuid.uuid4().hex[:8]
    spec = yaml.safe_load((REPO / "assets" / "sms_spam" / "task.yaml").read_text())
    spec["splits"] = {"dev_size": 60, "test_fraction": 0.25, "seed": 0, "max_rows": 700}
    spec["gates"] = [{"metric": "test_macro_f1", "min": 0.5}]
    (root / "assets" / "sms_spam").mkdir(parents=True)
    (root / "assets" / "sms_spam" / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    base = {k: v for k, v in os.environ.items() if k not in (
        "DAGSTER_HOME", "FMOPS_OWN_DAGSTER_HOME", "MLFLOW_TRACKING_URI", "FMOPS_EXECUTOR")}
    base.update({"FMOPS_STACK_DIR": str(root / "stack"), "FMOPS_HOME": str(root / "home"),
                 "FMOPS_ASSETS_DIR": str(root / "assets"), "DAGSTER_PG_DB": f"fmops_bench_dg_{tag}",
                 "FMOPS_MLFLOW_DB": f"fmops_bench_ml_{tag}", "FMOPS_MLFLOW_PORT": "5077",
                 "FMOPS_CELERY_QUEUE": f"fmops-bench-{tag}", "FMOPS_BIN": str(Path(sys.executable).parent)})
    printed = subprocess.run(["bash", "-c", f"source {REPO}/deploy/local/env.sh && env -0"], env=base,
                             capture_output=True, check=True).stdout.decode()
    env = dict(line.split("=", 1) for line in printed.split("\0") if "=" in line)
    try:
        sh("start.sh", env, "--workers", "2", "--no-ui")
        print(f"champion trained through the stack in {fmops(env, 'run', 'sms_spam'):.0f} s", flush=True)
        from fmops_pipelines.data.registry import fetch

        source = next(p for p in fetch("sms_spam_uci") if p.name == "SMSSpamCollection")  # pinned, verified
        sms = pd.read_csv(source, sep="\t", header=None, names=["label", "text"], quoting=3)
        texts = pd.concat([sms["text"]] * (args.rows // len(sms) + 1), ignore_index=True)[:args.rows]
        inbox = root / "home" / "inbox" / "sms_spam"
        inbox.mkdir(parents=True, exist_ok=True)
        names = [f"part{i:02d}.csv" for i in range(args.partitions)]
        for name in names:
            texts.to_frame().to_csv(inbox / name, index_label="id")
        total = args.partitions * args.rows
        partitions = [a for name in names for a in ("--partition", name)]
        results = {}
        for workers in (1, 2):
            if workers == 1:
                sh("stop.sh", env, "worker2")
            else:
                sh("start.sh", env, "--workers", "2", "--no-ui")
            before = last_event_id(env)
            wall = fmops(env, "batch", "sms_spam", *partitions)
            span = step_span(env, before)
            results[workers] = (wall, total / wall, total / span)
            print(f"{workers} worker(s): {total:,} rows in {args.partitions} partitions, {wall:.1f} s end to end "
                  f"({total / wall:,.0f} rows/s); steps' span {span:.1f} s ({total / span:,.0f} rows/s)", flush=True)
        print(f"scale-out 2 vs 1 worker: end to end {results[2][1] / results[1][1]:.2f}x, "
              f"steps' span {results[2][2] / results[1][2]:.2f}x (target >= 1.7x on 2 cores)")
    finally:
        sh("stop.sh", env)
        import psycopg2

        admin = psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"],
                                 user=env["DAGSTER_PG_USER"], dbname="postgres")
        admin.autocommit = True
        for db in (env["DAGSTER_PG_DB"], env["FMOPS_MLFLOW_DB"]):
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
