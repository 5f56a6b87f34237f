"""A task's jobs and schedules, and the cross-task evaluation job CI runs."""

from __future__ import annotations

import dagster as dg

from fmops_pipelines.spec import TaskSpec


def lifecycle_job_name(task: str) -> str:
    return f"{task}_lifecycle"


def evaluation_job_name(task: str) -> str:
    return f"{task}_evaluation"


def batch_job_name(task: str) -> str:
    return f"{task}_batch_inference"


def task_jobs(spec: TaskSpec) -> tuple[list, list]:
    """(jobs, schedules) of one task."""
    lifecycle = dg.define_asset_job(
        lifecycle_job_name(spec.name), selection=dg.AssetSelection.key_prefixes([spec.name]),
        description=f"{spec.name}: data -> prompts -> weak labels -> specialist -> gates -> champion -> predictions")
    evaluation = dg.define_asset_job(
        evaluation_job_name(spec.name), selection=dg.AssetSelection.assets([spec.name, "evaluation"]),
        description=f"{spec.name}: re-evaluate the latest specialist on test and run its gates")
    batch = dg.define_asset_job(
        batch_job_name(spec.name), selection=dg.AssetSelection.assets([spec.name, "batch_predictions"]),
        description=f"{spec.name}: label the inference input with the current champion")
    nightly = dg.ScheduleDefinition(name=f"{spec.name}_nightly_batch_inference", job=batch, cron_schedule="0 2 * * *",
                                    default_status=dg.DefaultScheduleStatus.STOPPED)
    return [lifecycle, evaluation, batch], [nightly]


def all_tasks_evaluation_job(tasks: list[str]) -> dg.UnresolvedAssetJobDefinition:
    """CI and the UI re-evaluate every task's latest specialist in one run."""
    return dg.define_asset_job(
        "evaluation_job", selection=dg.AssetSelection.assets(*[[name, "evaluation"] for name in tasks]),
        description="Re-evaluate every task's latest specialist on its held-out test split and run the gates")
