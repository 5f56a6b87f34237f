"""MLflow tracking as the project's own Dagster resource (dagster-mlflow mis-reports runs under MLflow 3).

The one tracking path: `record` mirrors what an asset returns as Dagster metadata into an MLflow run of
its own (numbers -> metrics, text -> params, JSON and tables -> JSON artifacts, inline plots -> PNG,
files -> artifacts), so an asset states its numbers once and both UIs show them. One MLflow run per
materialization, tagged with the Dagster run id and asset key, in one experiment per task. Empty
`tracking_uri` means SQLite under FMOPS_HOME; production sets MLFLOW_TRACKING_URI (read through
`dg.EnvVar`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from fmops_pipelines import paths
from fmops_pipelines.mlflow_store import experiment_id, using_uri


@dataclass
class TrackedRun:
    """An open MLflow run for one materialization; `record` mirrors the asset's output into it."""

    client: object  # mlflow.MlflowClient
    run_id: str

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Curves while the asset runs (e.g. per epoch); the final numbers go through `record`."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_safe(k), float(v), now, step) for k, v in metrics.items()])

    def record(self, output: dg.Output, params: Mapping | None = None, model_id: str | None = None) -> dg.Output:
        """Mirror the output's metadata (and `params`) into this run; metrics link to `model_id` when given,
        so MLflow shows them on that logged model's page. Returns the output unchanged."""
        from mlflow.entities import Metric, Param

        now, metrics, logged_params = int(time.time() * 1000), [], dict(params or {})
        for key, raw in (output.metadata or {}).items():
            value = raw.value if isinstance(raw, dg.MetadataValue) else raw
            if isinstance(value, (bool, int, float)):
                metrics.append(Metric(_safe(key), float(value), now, 0, model_id=model_id))
            elif isinstance(raw, dg.TableMetadataValue):
                self.client.log_dict(self.run_id, [r.data for r in value.records], f"{_safe(key)}.json")
            elif isinstance(raw, dg.MarkdownMetadataValue):
                self.client.log_text(self.run_id, value, f"{_safe(key)}.md")
            elif isinstance(raw, dg.PathMetadataValue):
                if Path(value).is_file():
                    self.client.log_artifact(self.run_id, value, _safe(key))
                elif Path(value).is_dir():  # e.g. an evaluation's plots
                    self.client.log_artifacts(self.run_id, value, _safe(key))
            elif isinstance(value, (dict, list)):
                self.client.log_dict(self.run_id, value, f"{_safe(key)}.json")
            elif isinstance(value, str):
                logged_params[key] = value
        self.client.log_batch(self.run_id, metrics=metrics,
                              params=[Param(_safe(k), str(v)[:6000]) for k, v in logged_params.items()])
        return output


def _safe(key: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", key)


class MlflowTracking(dg.ConfigurableResource):
    """Opens MLflow runs for asset materializations; empty tracking_uri means the FMOPS_HOME default."""

    tracking_uri: str = ""
    experiment_prefix: str = "fmops"

    @property
    def uri(self) -> str:
        return self.tracking_uri or paths.mlflow_tracking_uri()

    @contextmanager
    def active(self) -> Iterator[None]:
        """This store as MLflow's URI for the block (model loading and registry calls), then restored."""
        with using_uri(self.uri):
            yield

    @contextmanager
    def run(self, context: dg.AssetExecutionContext, task: str) -> Iterator[TrackedRun]:
        """An active MLflow run for this materialization (fluent calls such as log_model land in it);
        marked FAILED if the asset raises."""
        import mlflow

        asset_key = context.asset_key.to_user_string()
        tags = {"dagster.run_id": context.run_id, "dagster.asset_key": asset_key,
                "dagster.job": context.job_name, "fmops.task": task}
        if context.has_partition_key:
            tags["dagster.partition"] = context.partition_key
        with self.active(), mlflow.start_run(experiment_id=experiment_id(self.uri, task, self.experiment_prefix),
                                             run_name=asset_key.replace("/", "."), tags=tags) as run:
            yield TrackedRun(mlflow.MlflowClient(tracking_uri=self.uri), run.info.run_id)

    def record(self, context: dg.AssetExecutionContext, task: str, output: dg.Output,
               params: Mapping | None = None, model_id: str | None = None) -> dg.Output:
        """The common case: one MLflow run that holds exactly what the asset returned."""
        with self.run(context, task) as run:
            return run.record(output, params, model_id)
