"""Deployment stage: promote a gated specialist to `champion` and export its serving bundle."""

import dagster as dg

from fmops_pipelines.errors import StateError
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import task_asset
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"mlflow"}, "The registry's `champion` alias, moved only to a specialist whose gates all "
                                  "passed in this run; its serving bundle exported for batch inference.")
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowTracking, evaluation: dict) -> dg.Output:
        from fmops_pipelines.inference.bundle import export_bundle
        from fmops_pipelines.specialist.packaging import set_champion

        if not evaluation["passed"]:  # the blocking checks stop this step first; this guards direct calls
            failed = [g["name"] for g in evaluation["gates"] if not g["passed"]]
            raise StateError(f"{spec.name}: gates failed ({', '.join(failed)}); champion left unchanged")
        version = evaluation["model"]["version"]
        with mlflow.active():
            previous = set_champion(spec.name, version)
        bundle = export_bundle(spec.name, version, mlflow.uri)
        value = {"name": evaluation["model"]["name"], "version": version, "alias": "champion", "previous": previous}
        return mlflow.record(context, spec.name, dg.Output(value, metadata={
            "version": version, "previous": str(previous), "serving_bundle": dg.MetadataValue.path(str(bundle))}))

    return [champion]
