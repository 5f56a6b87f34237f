"""What runs a task on its own: the inbox sensor (new files -> their partitions), the nightly catch-up
schedule, and, when the spec asks for it, the drift sensor that relaunches labeling and training.
All start RUNNING so a deployment with the daemon acts without a click; each can be toggled on the UI's
Automation page."""

from __future__ import annotations

import json

import dagster as dg

from fmops_pipelines import paths
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.batch_inference import inbox_partitions
from fmops_pipelines.stages.conventions import key
from fmops_pipelines.stages.jobs import batch_job_name, lifecycle_job_name


def _champion(task: str) -> str | None:
    from fmops_pipelines.inference.registry_alias import alias_version
    from fmops_pipelines.specialist.registry_names import model_name

    return alias_version(paths.mlflow_tracking_uri(), model_name(task), "champion")


def new_file_requests(spec: TaskSpec, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    """Run requests for inbox files that are new or changed since the cursor, registering new partitions."""
    from fmops_pipelines.inference.inbox import output_path, ready_files, scored_since_written, signature

    files = ready_files(spec.inbox(), spec.inference.settle_seconds)
    seen = json.loads(cursor) if cursor else {}
    current = {name: signature(path) for name, path in files.items()}
    predictions = paths.predictions_dir(spec.name)
    changed = sorted(name for name, sig in current.items() if seen.get(name) != sig
                     and not scored_since_written(files[name], output_path(predictions, name,
                                                                           spec.inference.output_format)))
    if not changed:
        return dg.SensorResult(skip_reason=f"no new files in {spec.inbox()}", cursor=json.dumps(current))
    if _champion(spec.name) is None:
        return dg.SkipReason(f"{len(changed)} new file(s) wait for a champion: run the {spec.name} lifecycle first")
    partitions = inbox_partitions(spec)
    known = set(instance.get_dynamic_partitions(partitions.name))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=name, run_key=f"{name}@{current[name]}") for name in changed],
        dynamic_partitions_requests=[partitions.build_add_request([n for n in changed if n not in known])],
        cursor=json.dumps(current))


def catch_up_requests(spec: TaskSpec, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """Every inbox file registered, and a run for each partition with no output or an output from an
    earlier champion: after a night, every partition is labelled by the current champion."""
    from fmops_pipelines.inference.inbox import needing_scores, ready_files

    partitions = inbox_partitions(spec)
    files = ready_files(spec.inbox(), spec.inference.settle_seconds)
    known = set(instance.get_dynamic_partitions(partitions.name))
    if new := sorted(set(files) - known):
        instance.add_dynamic_partitions(partitions.name, new)
    stale = needing_scores(sorted(files), paths.predictions_dir(spec.name), spec.inference.output_format,
                           _champion(spec.name))
    return [dg.RunRequest(partition_key=name) for name in stale]


def task_automation(spec: TaskSpec) -> tuple[list, list]:
    """(sensors, schedules) of one task."""

    @dg.sensor(name=f"{spec.name}_inbox_sensor", job_name=batch_job_name(spec.name), minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Scores each new or replaced file in {spec.inbox()} as its own partition")
    def inbox_sensor(context: dg.SensorEvaluationContext):
        return new_file_requests(spec, context.instance, context.cursor)

    @dg.schedule(name=f"{spec.name}_nightly_batch_inference", job_name=batch_job_name(spec.name),
                 cron_schedule="0 2 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Nightly catch-up: scores inbox files the sensor missed and re-scores partitions "
                             "labelled by an earlier champion")
    def nightly(context: dg.ScheduleEvaluationContext):
        requests = catch_up_requests(spec, context.instance)
        return requests or dg.SkipReason("every inbox partition is scored by the current champion")

    sensors = [inbox_sensor]
    if spec.inference.drift.retrain:
        @dg.asset_sensor(name=f"{spec.name}_drift_retrain_sensor", asset_key=key(spec, "batch_predictions"),
                         job_name=lifecycle_job_name(spec.name), default_status=dg.DefaultSensorStatus.RUNNING,
                         description="Relabels and retrains (the lifecycle job, gates included) when a scored "
                                     "partition drifts past the thresholds in inference.drift")
        def drift_retrain(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
            materialization = asset_event.asset_materialization
            drifted = materialization.metadata.get("drift_detected")
            if not (drifted and drifted.value):
                return dg.SkipReason(f"partition {materialization.partition} did not drift")
            active = context.instance.get_runs(dg.RunsFilter(job_name=lifecycle_job_name(spec.name), statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
            if active:
                return dg.SkipReason(f"a {lifecycle_job_name(spec.name)} run is already under way")
            return dg.RunRequest(run_key=f"drift-{asset_event.run_id}",
                                 tags={"fmops/trigger": "drift", "fmops/partition": materialization.partition or ""})

        sensors.append(drift_retrain)
    return sensors, [nightly]
