"""Runs a task's jobs through Dagster from the CLI, on the FMOPS_HOME instance, with live progress.

Runs execute in-process (heavy libraries load once, which on 2 cores beats a process per step), or with
FMOPS_EXECUTOR=celery step by step on Celery workers (see execution.py), and are recorded in the same
Dagster instance that `fmops ui` serves, so every CLI run shows up in the UI.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from fmops_pipelines import paths, progress, storage
from fmops_pipelines.display import num
from fmops_pipelines.errors import missing_driver, store_problem
from fmops_pipelines.execution import uses_celery
from fmops_pipelines.spec import TaskSpec

USER_ERRORS = ("DataError", "SpecError", "StateError", "EnvironmentProblem", "LabelingFunctionError", "Failure")


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failed_gates: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.errors or self.failed_checks:
            return 2
        if self.failed_gates:
            return 1
        return 0 if self.success else 2


_OWN_DAGSTER_HOME = "FMOPS_OWN_DAGSTER_HOME"  # marks a DAGSTER_HOME that fmops itself set (children inherit it)


def prepare_environment() -> None:
    """The Dagster instance: DAGSTER_HOME as the user set it (e.g. Postgres storage in its dagster.yaml),
    else the embedded one under FMOPS_HOME/dagster; the MLflow store created once."""
    user_home = os.environ.get("DAGSTER_HOME")
    if user_home and user_home != os.environ.get(_OWN_DAGSTER_HOME):
        if not Path(user_home).is_dir():
            from fmops_pipelines.errors import EnvironmentProblem

            raise EnvironmentProblem(f"DAGSTER_HOME={user_home}: no such folder (it should hold dagster.yaml)")
    else:
        home = paths.dagster_home()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = os.environ[_OWN_DAGSTER_HOME] = str(home)
        if uses_celery():
            from fmops_pipelines.errors import EnvironmentProblem

            raise EnvironmentProblem("FMOPS_EXECUTOR=celery: Celery workers need a Dagster instance they can share; "
                                     "set DAGSTER_HOME to a Postgres-backed one (deploy/postgres/dagster.yaml)")
    quiet_libraries()
    from fmops_pipelines.mlflow_store import init_tracking_store

    init_tracking_store(paths.mlflow_tracking_uri())


def quiet_libraries() -> None:
    """Progress bars and INFO chatter from MLflow / Hugging Face would bury the run's own progress."""
    import logging

    for var, value in (("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"), ("MLFLOW_LOGGING_LEVEL", "WARNING"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_VERBOSITY", "error"), ("TQDM_DISABLE", "1"), ("HF_HUB_OFFLINE", "1")):
        os.environ.setdefault(var, value)
    for name in ("mlflow", "alembic", "great_expectations", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _root_error(error) -> tuple[str, str]:
    """The innermost cause of a step failure: (exception class name, first line of its message)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    # "fmops_pipelines.errors.DataError: file: reason" -> "file: reason"; a message that starts on its second line
    # (scikit-learn's "ValueError: \nAll the 36 fits failed.") gives its first line with text
    text = re.sub(rf"^[\w.]*\b{re.escape(error.cls_name or '')}: ?", "", (error.message or "").strip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return error.cls_name or "", lines[0] if lines else (error.cls_name or "")


def _stack_text(error) -> str:
    """The traceback text of a step failure and of every cause under it."""
    parts = []
    while error is not None:
        parts.extend(error.stack or [])
        error = getattr(error, "cause", None)
    return "".join(parts)


def step_labels(defs) -> dict[str, str]:
    """Each step (op) of a task's definitions -> what a user calls it: `task/asset` or `task/asset:check`."""
    labels = {}
    for node in defs.resolve_asset_graph().assets_defs:
        if not node.is_executable:
            continue
        if node.keys:
            labels[node.node_def.name] = ", ".join(k.to_user_string() for k in node.keys)
        else:  # a standalone check's own step
            check = next(iter(node.check_keys))
            labels[node.node_def.name] = f"{check.asset_key.to_user_string()}:{check.name}"
    return labels


class _Progress:
    """Turns the run's Dagster events, as the instance stores them, into one line per step with its seconds;
    the checks a step evaluated follow its line (a check that is its own step goes on that step's line), then
    the warnings it logged: a step that went on without something (no gold teacher, an unused split column)
    says so where the user reads, not only in the Dagster UI's log."""

    def __init__(self, out: TextIO, gate_names: set[str], labels: dict[str, str]):
        self.out, self.gate_names, self.labels = out, gate_names, labels
        self.show_progress = progress.terminal_printer(out)
        self.started: dict[str, float] = {}
        self.checks: dict[str, list[tuple[str, str]]] = {}  # step -> (check name, verdict and detail)
        self.warnings: dict[str, list[str]] = {}  # step -> what it logged at WARNING or above
        self.outcome = RunOutcome(run_id="", success=False)

    def handle(self, entry) -> None:
        import logging

        from dagster import AssetCheckSeverity, DagsterEventType

        event = entry.dagster_event
        if event is None:  # a log line; progress inside a long step is shown as it arrives
            message = entry.user_message or ""
            if message.startswith(progress.PREFIX):
                self.show_progress(message)
            elif entry.level >= logging.WARNING and entry.step_key:
                step = self.labels.get(entry.step_key, entry.step_key)
                self.warnings.setdefault(step, []).append(message)
            return
        progress.clear_line(self.out)
        step = self.labels.get(event.step_key or "", event.step_key or "")
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.started[step] = entry.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            took = entry.timestamp - self.started.get(step, entry.timestamp)
            mark = "ok " if kind == DagsterEventType.STEP_SUCCESS else "FAIL"
            checks = self.checks.pop(step, [])
            own = [verdict for name, verdict in checks if step.endswith(f":{name}")]
            print(f"  [{mark}] {step:<52} {took:6.1f}s  {own[0] if own else ''}".rstrip(), file=self.out, flush=True)
            for name, verdict in checks:
                if not step.endswith(f":{name}"):
                    print(f"         check {name:<45} {verdict}", file=self.out, flush=True)
            for message in self.warnings.pop(step, []):
                print(f"         warning: {message}", file=self.out, flush=True)
            if kind == DagsterEventType.STEP_FAILURE:
                cls, message = _root_error(event.step_failure_data.error)
                if cls != "DagsterAssetCheckFailedError":
                    driver = missing_driver(ModuleNotFoundError(message)) if cls == "ModuleNotFoundError" else None
                    store = store_problem(cls, message, _stack_text(event.step_failure_data.error))
                    error = driver or store or (message if cls in USER_ERRORS else f"{cls}: {message}")
                    if error not in self.outcome.errors:  # steps failing for one cause (the FM cache) say it once
                        self.outcome.errors.append(error)
        elif kind == DagsterEventType.STEP_SKIPPED:
            print(f"  [skip] {step}", file=self.out, flush=True)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            name = data.check_name
            meta = {k: v.value for k, v in data.metadata.items()}
            detail = f"value {num(meta['value'])} vs threshold {num(meta['threshold'])}" if "value" in meta else ""
            warn_only = data.severity == AssetCheckSeverity.WARN  # e.g. drift: reported, never a failed run
            verdict = "passed" if data.passed else "WARN" if warn_only else "FAILED"
            self.checks.setdefault(step, []).append((name, f"{verdict} {detail}".strip()))
            if not data.passed and not warn_only:
                (self.outcome.failed_gates if name in self.gate_names else self.outcome.failed_checks).append(name)


def task_job_definitions(spec: TaskSpec):
    """One task's definitions with the project's resources: what a CLI run executes."""
    import dagster as dg

    from fmops_pipelines.defs.resources import resources
    from fmops_pipelines.stages import task_definitions

    return dg.Definitions.merge(task_definitions(spec), resources())


_WORKER_JOBS: dict[tuple[str, str], object] = {}  # (job name, spec as JSON) -> job: a worker builds it once


def task_job(task: str, job_name: str):
    """The reconstructor Celery workers call to load a step's job: the same definitions the CLI built, from
    the task spec as it is now (a changed task.yaml gives a new job; an unchanged one is reused)."""
    from fmops_pipelines.spec import get_spec

    spec = get_spec(task)
    key = (job_name, spec.model_dump_json())
    if key not in _WORKER_JOBS:
        _WORKER_JOBS[key] = task_job_definitions(spec).resolve_job_def(job_name)
    return _WORKER_JOBS[key]


def reconstructable_task_job(task: str, job_name: str):
    import dagster as dg

    return dg.build_reconstructable_job(__name__, "task_job", reconstructable_args=(task, job_name))


def run_job(spec: TaskSpec, job_name: str, out: TextIO = sys.stderr, partition_key: str | None = None) -> RunOutcome:
    """Execute one of the task's jobs in-process on the FMOPS_HOME instance, printing progress as the
    instance stores each event (a listener on the run, no polling). A partitioned job runs one partition."""
    prepare_environment()
    defs = task_job_definitions(spec)
    job = defs.resolve_job_def(job_name)
    with one_run_at_a_time():
        return _execute(spec, job, job_name, defs, out, partition_key)


def run_partitions(spec: TaskSpec, job_name: str, keys: list[str], out: TextIO = sys.stderr,
                   parallel: int = 4) -> dict[str, RunOutcome]:
    """One run per partition. In-process they run one after another. On Celery up to `parallel` runs are
    orchestrated at once from a pool of processes (Dagster's run execution is not thread-safe: it
    reconfigures logging per run); each submits its partition's step, waits, then takes the next partition.
    About twice the number of workers keeps every worker busy; more only costs start-up CPU."""
    if not uses_celery() or parallel <= 1 or len(keys) == 1:
        prepare_environment()
        defs = task_job_definitions(spec)
        job = defs.resolve_job_def(job_name)
        with one_run_at_a_time():
            return {key: _execute(spec, job, job_name, defs, out, key) for key in keys}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(parallel, len(keys)), mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = pool.map(_run_partition, [spec.name] * len(keys), [job_name] * len(keys), keys)
        return dict(zip(keys, outcomes, strict=True))


_PROCESS_JOBS: dict[tuple[str, str], tuple] = {}  # (task, job) -> (spec, defs, job), built once per process


def _run_partition(task: str, job_name: str, key: str) -> RunOutcome:
    """One partition's run in a pool process; the process keeps the job it built for the next partition."""
    if (task, job_name) not in _PROCESS_JOBS:
        from fmops_pipelines.spec import get_spec

        prepare_environment()
        spec = get_spec(task)
        defs = task_job_definitions(spec)
        _PROCESS_JOBS[task, job_name] = spec, defs, defs.resolve_job_def(job_name)
    spec, defs, job = _PROCESS_JOBS[task, job_name]
    return _execute(spec, job, job_name, defs, sys.stderr, key)


@contextmanager
def one_run_at_a_time() -> Iterator[None]:
    """The embedded instance and the asset storage under FMOPS_HOME take one CLI run at a time: a second
    `fmops run` fails at once with one line instead of interleaving writes. An OS file lock, so a killed run
    releases it. A DAGSTER_HOME of the user's own (Postgres) has no such limit and takes no lock."""
    if os.environ.get("DAGSTER_HOME") != os.environ.get(_OWN_DAGSTER_HOME):
        yield
        return
    import fcntl

    from fmops_pipelines.errors import StateError

    path = paths.fmops_home() / "run.lock"
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise StateError(f"{paths.fmops_home()}: another fmops run (pid {holder}) is using this FMOPS_HOME; its "
                              "SQLite instance takes one run at a time: wait for it, or use a Postgres DAGSTER_HOME "
                              "(deploy/postgres)") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _execute(spec: TaskSpec, job, job_name: str, defs, out: TextIO, partition_key: str | None) -> RunOutcome:
    import dagster as dg

    instance = dg.DagsterInstance.get()
    for note in fail_orphaned_runs(instance):
        print(f"note: {note}", file=out, flush=True)
    run_id = str(uuid.uuid4())  # known before launch, so the listener can be attached to it
    labels = {step: f"{label}[{partition_key}]" if partition_key else label for step, label in step_labels(defs).items()}
    progress = _Progress(out, {g.check_name for g in spec.gates}, labels)
    start = time.perf_counter()
    where = f", partition {partition_key}" if partition_key else ""
    print(f"{spec.name}: {job_name} (run {run_id[:8]}{where}, Dagster home {instance.root_directory})", file=out,
          flush=True)
    tags = {"fmops/launched_by": "cli", "fmops/pid": str(os.getpid()), "fmops/host": socket.gethostname()}
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if uses_celery():  # steps go to the Celery workers; this process orchestrates
        with _watching(instance, run_id, progress):
            result = _execute_on_workers(spec, job, job_name, instance, run_id, run_config, tags, partition_key)
    else:
        instance.add_event_listener(run_id, progress.handle)  # every event is stored by this process
        result = _execute_here(job, instance, run_id, run_config, tags, partition_key)
    outcome = progress.outcome
    outcome.run_id, outcome.success, outcome.seconds = run_id, result.success, time.perf_counter() - start
    return outcome


@contextmanager
def _watching(instance, run_id: str, progress: _Progress, drain_s: float = 30) -> Iterator[None]:
    """Feeds `progress` the run's events as the event log stores them, whichever process wrote them (the
    workers write the step events); after the run, waits until its last event has been seen."""
    from dagster import DagsterEventType

    ended = threading.Event()
    finished = {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}

    def on_event(entry, _cursor=None) -> None:
        progress.handle(entry)
        if entry.dagster_event is not None and entry.dagster_event.event_type in finished:
            ended.set()

    storage = instance.event_log_storage
    storage.watch(run_id, None, on_event)
    try:
        yield
        ended.wait(drain_s)
    finally:
        storage.end_watch(run_id, on_event)


def _execute_here(job, instance, run_id: str, run_config: dict, tags: dict, partition_key: str | None):
    """Every step in this process, one after another (Dagster's in_process executor), on the job as built here.
    Not through `execute_in_process`: that keeps every step's output in memory until the run ends, for its result
    object (Dagster's output capture), which fmops never reads (outputs go to the asset storage and each step loads
    its inputs from there): at a 67k-row pool the splits, label matrices and label frames it held raised every later
    step's peak (docs/measurements.md, "Memory at 67k rows")."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run

    run = instance.create_run_for_job(job_def=job, run_id=run_id, tags=_with_partition(tags, partition_key),
                                      run_config={**run_config, "execution": {"config": {"in_process": {}}}})
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


def _execute_on_workers(spec: TaskSpec, job, job_name: str, instance, run_id: str, run_config: dict, tags: dict,
                        partition_key: str | None):
    """The job's executor (Celery) runs each step on a worker, which rebuilds the job through
    `task_job`; the run is created first so its id is known to the progress listener."""
    from dagster._core.execution.api import execute_run

    recon = reconstructable_task_job(spec.name, job_name)
    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")  # dagster-celery's
    run = instance.create_run_for_job(job_def=job, run_id=run_id, run_config=run_config,
                                      tags=_with_partition(tags, partition_key),
                                      job_code_origin=recon.get_python_origin())
    return execute_run(recon, run, instance, raise_on_error=False)


def _with_partition(tags: dict, partition_key: str | None) -> dict:
    return tags if partition_key is None else {**tags, "dagster/partition": partition_key}


def fail_orphaned_runs(instance) -> list[str]:
    """CLI runs execute in the fmops process; one killed (kill -9, OOM) leaves its run STARTED forever,
    since no run monitor watches in-process runs. Runs whose process is gone from this host are marked
    failed the next time fmops launches a run; returns what was done, one line per run."""
    import dagster as dg
    import psutil

    notes = []
    active = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
                                             tags={"fmops/launched_by": "cli", "fmops/host": socket.gethostname()}))
    for run in active:
        pid = int(run.tags.get("fmops/pid", "0"))
        if pid and not psutil.pid_exists(pid):
            instance.report_run_failed(run, message=f"the fmops process that ran it (pid {pid}) is gone: killed "
                                                    "or crashed; outputs it had not finished were never written")
            notes.append(f"marked run {run.run_id[:8]} ({run.job_name}) failed: its process {pid} is gone")
    return notes


def stored(task: str, asset: str):
    """The latest stored value of a task asset, or None if it was never materialized."""
    return storage.latest(task, asset)
