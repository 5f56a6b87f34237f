"""What runs a task on its own: the inbox sensor (new files -> their partitions), the nightly catch-up
schedule, the review sensor (Label Studio annotations -> gold store -> a new lifecycle), and, when the spec asks for
it, the drift sensor that relaunches labeling and training.
All start RUNNING so a deployment with the daemon acts without a click; each can be toggled on the UI's
Automation page."""

from __future__ import annotations

import json

import dagster as dg

from fmops_pipelines import paths
from fmops_pipelines.resources import LabelStudioResource
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


def review_requests(spec: TaskSpec, client, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """Import the annotations people submitted in Label Studio; once spec.review.retrain_after new labels have come
    in since the last launch, launch the lifecycle (gated as always). The cursor is the gold store's size at the
    last launch."""
    from fmops_pipelines.errors import FmopsError
    from fmops_pipelines.review import rounds
    from fmops_pipelines.review.store import GoldStore

    if client is None:
        return dg.SensorResult(skip_reason=f"{rounds.URL_ENV} / {rounds.TOKEN_ENV} not set: no Label Studio to "
                                           "import from", cursor=cursor)
    store = GoldStore()
    try:
        imported = rounds.pull(spec, store, client)
    except FmopsError as exc:  # unreachable server, refused token, a bad annotation: said on the tick, retried
        return dg.SensorResult(skip_reason=str(exc), cursor=cursor)
    total = store.count(spec.name)
    launched = json.loads(cursor)["launched_at"] if cursor else 0
    waiting = total - launched
    threshold = spec.review.retrain_after
    if threshold is None or waiting < threshold:
        return dg.SensorResult(skip_reason=f"imported {imported.new} new label(s); {waiting} since the last launch "
                                           f"(launch at {threshold if threshold else 'never: retrain_after is null'})",
                               cursor=cursor)
    active = instance.get_runs(dg.RunsFilter(job_name=lifecycle_job_name(spec.name), statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
    if active:
        return dg.SensorResult(skip_reason=f"{waiting} new label(s) wait: a {lifecycle_job_name(spec.name)} run is "
                                           "under way", cursor=cursor)
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"review-{total}", tags={
        "fmops/trigger": "review", "fmops/new_labels": str(waiting)})], cursor=json.dumps({"launched_at": total}))


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

    @dg.sensor(name=f"{spec.name}_review_sensor", job_name=lifecycle_job_name(spec.name), minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Imports annotations submitted in Label Studio into the gold store; after "
                           f"{spec.review.retrain_after or 'no (retrain_after: null)'} new labels, relaunches the "
                           "lifecycle (gates included)")
    def review_sensor(context: dg.SensorEvaluationContext, label_studio: LabelStudioResource):
        return review_requests(spec, label_studio.client(), context.instance, context.cursor)

    sensors = [inbox_sensor, review_sensor]
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
