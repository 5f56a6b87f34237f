"""Where a run's steps execute.

Default: in the fmops process (the CLI) or Dagster's multiprocess executor (runs launched from the UI):
on one small machine, loading torch and the models once beats shipping steps elsewhere.

`FMOPS_EXECUTOR=celery`: every step is a Celery task on RabbitMQ, picked up by however many
`celery -A fmops_pipelines.celery_app worker` processes are running, on this machine or others. The
executor here and the workers' app are built from the same settings (`celery_app_args`), so they cannot
disagree about the broker, the result backend or the delivery rules. Workers and the process that
orchestrates a run need the same environment: the shared Dagster instance (a Postgres DAGSTER_HOME), the
MLflow server, FMOPS_HOME (asset storage, FM cache: a shared folder across machines) and FMOPS_ASSETS_DIR.

Result backend: Redis, not RPC. With `rpc://` a step's events come back as a message to the one process
that submitted it, once; a run worker that restarts (run retries, resume after a deploy) can no longer
read the results of steps that finished meanwhile. Redis keeps each result for a day, readable by any
process, and this deployment already runs it. `FMOPS_CELERY_BACKEND=rpc://` still works where Redis is
not wanted.

Delivery: a step is acknowledged only when it finished (`task_acks_late`) and requeued when the process
running it dies (`task_reject_on_worker_lost`), so a worker killed with kill -9 mid-step leads to the step
being run again by another worker; each worker takes one step at a time (`worker_prefetch_multiplier=1`,
concurrency 1) so a long training step never holds a queue of steps hostage.
"""

from __future__ import annotations

import os

from fmops_pipelines.errors import EnvironmentProblem

EXECUTOR_ENV = "FMOPS_EXECUTOR"
BROKER_ENV, BACKEND_ENV, QUEUE_ENV = "FMOPS_CELERY_BROKER", "FMOPS_CELERY_BACKEND", "FMOPS_CELERY_QUEUE"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "dagster"  # dagster-celery's; one queue per deployment sharing a broker keeps their steps apart
MODES = ("default", "celery")
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "result_expires": 86400,
    "broker_connection_retry_on_startup": True,
}


def executor_mode() -> str:
    mode = os.environ.get(EXECUTOR_ENV, "default").strip() or "default"
    if mode not in MODES:
        raise EnvironmentProblem(f"{EXECUTOR_ENV}={mode}: unknown executor (choose one of {', '.join(MODES)})")
    return mode


def uses_celery() -> bool:
    return executor_mode() == "celery"


def celery_urls() -> tuple[str, str]:
    return os.environ.get(BROKER_ENV, DEFAULT_BROKER), os.environ.get(BACKEND_ENV, DEFAULT_BACKEND)


def celery_queue() -> str:
    return os.environ.get(QUEUE_ENV, DEFAULT_QUEUE)


def celery_settings() -> dict:
    return {**CELERY_SETTINGS, "task_default_queue": celery_queue()}


def celery_app_args() -> dict:
    """The Celery app's arguments, identical for the executor (which submits steps) and the workers."""
    from dagster_celery.executor import CeleryExecutor

    broker, backend = celery_urls()
    return CeleryExecutor.for_cli(broker=broker, backend=backend, config_source=celery_settings()).app_args()


def executor_def():
    """The executor for every job of the code location; None keeps Dagster's default."""
    if not uses_celery():
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise EnvironmentProblem(f"{EXECUTOR_ENV}=celery needs dagster-celery, which is not installed: "
                                 "pip install 'fmops[celery]' (or .[celery] in a checkout)") from exc

    def source(env: str, default: str):  # a URL with a password stays in the environment, out of run config
        return {"env": env} if os.environ.get(env) else default

    broker, backend = celery_urls()
    return celery_executor.configured({
        "broker": source(BROKER_ENV, broker), "backend": source(BACKEND_ENV, backend),
        "config_source": celery_settings(), "retries": {"enabled": {}}}, name="celery")
