"""Batch inference stage: one partition per file in the task's inbox, scored by the champion with
tuned settings, streamed to an atomically written output with lineage columns, with its cost against
the FM and a non-blocking drift check against the champion's reference profile."""

import dagster as dg

from fmops_pipelines import paths
from fmops_pipelines.errors import StateError
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
        from fmops_pipelines.inference.batch import predict_file
        from fmops_pipelines.inference.inbox import output_path
        from fmops_pipelines.inference.tuning import Overrides

        partition = context.partition_key
        source = spec.inbox() / partition
        if not source.is_file():
            raise StateError(f"{spec.name}: partition '{partition}': its input {source} is no longer in the inbox")
        target = output_path(paths.predictions_dir(spec.name), partition, inference.output_format)
        # resolved by the champion's architecture: an n-gram champion never imports torch
        device = inference.device if inference.device != "auto" else compute.device
        r = predict_file(spec.name, source, target, text_column=inference.text_column, partition=partition,
                         run_id=context.run_id, device=device, drift=inference.drift,
                         fixed=Overrides(inference.batch_size, inference.workers, inference.threads))
        if r.drift["drifted"]:
            context.log.warning(f"{spec.name}/{partition}: predictions drifted from the champion's reference "
                                f"(class PSI {r.drift['class_psi']}, mean confidence down {r.drift['confidence_drop']})")
        metadata = {"rows": r.stats.rows, "path": dg.MetadataValue.path(str(target)), "source": str(source),
                    "model_version": r.bundle.version, "label_model": r.bundle.info["label_model"],
                    "texts_per_s": r.cost["rows_per_s"], "wall_seconds": r.cost["seconds"],
                    "fm_seconds_equivalent": r.cost["fm_seconds_equivalent"] or 0.0,
                    "fm_calls_equivalent": r.cost["fm_calls_equivalent"],
                    "speedup_vs_fm": r.cost["speedup_vs_fm"] or 0.0,
                    "tuned_texts_per_s": r.tuned.texts_per_s, "tuning": r.tuned.how,
                    "settings": dg.MetadataValue.json(r.tuned.settings.as_dict()),
                    "tuning_candidates": dg.MetadataValue.json(r.tuned.table),
                    "label_counts": dg.MetadataValue.json(dict(zip(r.bundle.info["labels"],
                                                                   r.stats.class_counts.tolist(), strict=True))),
                    "drift_detected": r.drift["drifted"], "drift": dg.MetadataValue.json(r.drift)}
        drift = dg.AssetCheckResult(check_name="prediction_drift", passed=not r.drift["drifted"],
                                    severity=dg.AssetCheckSeverity.WARN, metadata={
                                        k: v for k, v in r.drift.items() if isinstance(v, (int, float, str, bool))})
        return mlflow.record(context, spec.name, dg.MaterializeResult(metadata=metadata, check_results=[drift]))

    return [batch_predictions]
