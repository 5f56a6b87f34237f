"""MLflow tracking as the project's own Dagster resource (dagster-mlflow mis-reports runs under MLflow 3).

One MLflow run per asset materialization, tagged with the Dagster run id and asset key, in one
experiment per task. Local default: SQLite + a file artifact root under FMOPS_HOME; production sets
MLFLOW_TRACKING_URI and nothing else changes.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

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


class MlflowTracking(dg.ConfigurableResource):
    """Opens MLflow runs for asset materializations; empty tracking_uri means the FMOPS_HOME default."""

    tracking_uri: str = ""
    experiment_prefix: str = "fmops"

    @property
    def uri(self) -> str:
        return self.tracking_uri or paths.mlflow_tracking_uri()

    def configure(self) -> None:
        import mlflow

        init_tracking_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    @contextmanager
    def run(self, context: dg.AssetExecutionContext, task: str) -> Iterator:
        """An active MLflow run for this materialization; marked FAILED if the asset raises."""
        import mlflow

        self.configure()
        asset_key = context.asset_key.to_user_string()
        tags = {"dagster.run_id": context.run_id, "dagster.asset_key": asset_key,
                "dagster.job": context.job_name, "fmops.task": task}
        with mlflow.start_run(experiment_id=experiment_id(self.uri, task, self.experiment_prefix),
                              run_name=asset_key.replace("/", "."), tags=tags) as run:
            yield run
