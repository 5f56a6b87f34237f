"""One task spec -> its assets, checks and jobs; the stages are wired by asset key names."""

from __future__ import annotations

import dagster as dg

from fmops_pipelines.defs import data, deployment, evaluation, exploration, labeling, training
from fmops_pipelines.spec import TaskSpec

STAGES = (data, exploration, labeling, training, evaluation, deployment)


def lifecycle_job_name(task: str) -> str:
    return f"{task}_lifecycle"


def evaluation_job_name(task: str) -> str:
    return f"{task}_evaluation"


def batch_job_name(task: str) -> str:
    return f"{task}_batch_inference"


def build_task(spec: TaskSpec) -> tuple[list, list, list]:
    """(assets and checks, jobs, schedules) for one task."""
    defs = [d for stage in STAGES for d in stage.build(spec)]
    prefix = dg.AssetSelection.key_prefixes([spec.name])
    jobs = [
        dg.define_asset_job(lifecycle_job_name(spec.name), selection=prefix,
                            description=f"{spec.name}: data -> prompts -> weak labels -> specialist -> gates -> champion -> predictions"),
        dg.define_asset_job(evaluation_job_name(spec.name), selection=dg.AssetSelection.assets([spec.name, "evaluation"]),
                            description=f"{spec.name}: re-evaluate the latest specialist on test and run its gates"),
        dg.define_asset_job(batch_job_name(spec.name), selection=dg.AssetSelection.assets([spec.name, "batch_predictions"]),
                            description=f"{spec.name}: label the inference input with the current champion"),
    ]
    schedules = [dg.ScheduleDefinition(name=f"{spec.name}_nightly_batch_inference", job=jobs[2], cron_schedule="0 2 * * *",
                                       default_status=dg.DefaultScheduleStatus.STOPPED)]
    return defs, jobs, schedules


def build_definitions(specs: dict[str, TaskSpec]) -> dg.Definitions:
    from fmops_pipelines.defs.resources import default_resources

    assets, jobs, schedules = [], [], []
    for spec in specs.values():
        a, j, s = build_task(spec)
        assets += a
        jobs += j
        schedules += s
    if specs:  # CI and the UI re-evaluate every task's latest specialist in one run
        jobs.append(dg.define_asset_job(
            "evaluation_job", selection=dg.AssetSelection.assets(*[[name, "evaluation"] for name in specs]),
            description="Re-evaluate every task's latest specialist on its held-out test split and run the gates"))
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules, resources=default_resources())
