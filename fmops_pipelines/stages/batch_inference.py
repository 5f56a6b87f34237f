"""Batch inference stage: one partition per file in the task's inbox, scored by the champion with
tuned settings, streamed to an atomically written output with lineage columns, with its cost against
the FM and a non-blocking drift check against the champion's reference profile."""

import dagster as dg

from fmops_pipelines.resources import ComputeResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import key, task_asset
from fmops_pipelines.tracking import MlflowTracking


def inbox_partitions(spec: TaskSpec) -> dg.DynamicPartitionsDefinition:
    """Dynamic: the set of input files is open-ended and named by whoever drops them in the inbox."""
    return dg.DynamicPartitionsDefinition(name=f"{spec.name}_inbox")


def drift_check_spec(spec: TaskSpec) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec("prediction_drift", asset=key(spec, "batch_predictions"), blocking=False,
                             description=f"predicted-class PSI <= {spec.inference.drift.max_psi} and mean confidence "
                                         f"no more than {spec.inference.drift.max_confidence_drop} below the "
                                         "champion's test profile (warns only)")


def build(spec: TaskSpec) -> list:
    inference = spec.inference

    @task_asset(spec, {"parquet", "pyarrow"}, "The champion's labels, probabilities and lineage for one inbox file "
                                              "(partition = file name).",
                deps=[key(spec, "champion")], partitions_def=inbox_partitions(spec),
                check_specs=[drift_check_spec(spec)])
    def batch_predictions(context: dg.AssetExecutionContext, mlflow: MlflowTracking,
                          compute: ComputeResource) -> dg.MaterializeResult:
        from fmops_pipelines.inference.batch import score_partition

        # resolved by the champion's architecture: an n-gram champion never imports torch
        device = inference.device if inference.device != "auto" else compute.device
        r = score_partition(spec, context.partition_key, context.run_id, device)
        if r.drift["drifted"]:
            context.log.warning(f"{spec.name}/{context.partition_key}: predictions drifted from the champion's "
                                f"reference (class PSI {r.drift['class_psi']}, mean confidence down "
                                f"{r.drift['confidence_drop']})")
        metadata = {k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in r.summary().items()}
        metadata["path"] = dg.MetadataValue.path(metadata["path"])
        drift = dg.AssetCheckResult(check_name="prediction_drift", passed=not r.drift["drifted"],
                                    severity=dg.AssetCheckSeverity.WARN, metadata={
                                        k: v for k, v in r.drift.items() if isinstance(v, (int, float, str, bool))})
        return mlflow.record(context, spec.name, dg.MaterializeResult(metadata=metadata, check_results=[drift]))

    return [batch_predictions]
