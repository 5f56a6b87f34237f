"""The MLflow store without Dagster: create it once, one experiment per task, and a scoped tracking URI.

MLflow's fluent API (model logging and loading) reads a process-global URI; `using_uri` sets it only for
the `with` block and restores the previous URIs (and the MLFLOW_*_URI variables MLflow exports itself),
so one process can serve several stores and nothing leaks into the next caller.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from fmops_pipelines import paths


def init_tracking_store(uri: str) -> None:
    """Create/migrate the SQLite store once, under a file lock, before parallel steps race to do it."""
    import mlflow

    if not uri.startswith("sqlite:"):
        return
    lock = paths.fmops_home() / ".mlflow.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when a database or server tracking store cannot be reached or its driver is
    missing: MLflow itself retries a database connection for ~100 s, a warning per attempt, then raises."""
    from fmops_pipelines.errors import EnvironmentProblem, missing_driver, redact

    scheme = uri.split(":", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme in ("", "file", "sqlite", "databricks", "databricks-uc", "uc"):
        return
    where = f"the MLflow tracking store {redact(uri)}"
    if scheme in ("http", "https"):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
        except requests.RequestException as exc:
            raise EnvironmentProblem(f"{where} cannot be reached: {_first_line(exc)}") from None
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(timeout_s)}
                                          if scheme == "postgresql" else {})
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as exc:
        raise EnvironmentProblem(missing_driver(exc) or f"{where} needs the '{exc.name}' driver, which is not "
                                 "installed") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        raise EnvironmentProblem(f"{where} cannot be reached: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    from fmops_pipelines.errors import cause_line

    return cause_line(str(getattr(exc, "orig", None) or exc)) or type(exc).__name__


def experiment_id(uri: str, task: str, prefix: str = "fmops") -> str:
    """The task's experiment, created on first use with its artifacts under FMOPS_HOME/mlartifacts."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    name = f"{prefix}/{task}"
    existing = client.get_experiment_by_name(name)
    if existing:
        return existing.experiment_id
    location = f"{paths.mlflow_artifact_root()}/{task}" if uri.startswith("sqlite:") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another step created it first
        return client.get_experiment_by_name(name).experiment_id


@contextmanager
def using_uri(uri: str) -> Iterator[None]:
    """MLflow's tracking and registry URIs set to `uri` for this block only (store created on first use).

    Restores what was there before exactly, unset included: `mlflow.get_*_uri()` return resolved defaults,
    and writing those back would pin this process (and, through the MLFLOW_*_URI variables MLflow exports,
    its subprocesses) to a store that was only ever a fallback.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    init_tracking_store(uri)
    saved_env = {name: os.environ.get(name) for name in _EXPORTED}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)  # as set, not as resolved
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # set by mlflow.set_*_uri for subprocesses
