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


def task_jobs(spec: TaskSpec) -> list:
    """The jobs of one task; batch inference is partitioned (one run per inbox file), the rest is not."""
    batch_key = dg.AssetKey([spec.name, "batch_predictions"])
    lifecycle = dg.define_asset_job(
        lifecycle_job_name(spec.name),
        selection=dg.AssetSelection.key_prefixes([spec.name]) - dg.AssetSelection.assets(batch_key),
        description=f"{spec.name}: data -> prompts -> weak labels -> specialist -> gates -> champion")
    evaluation = dg.define_asset_job(
        evaluation_job_name(spec.name), selection=dg.AssetSelection.assets([spec.name, "evaluation"]),
        description=f"{spec.name}: re-evaluate the latest specialist on test and run its gates")
    batch = dg.define_asset_job(
        batch_job_name(spec.name), selection=dg.AssetSelection.assets(batch_key),
        description=f"{spec.name}: label one inbox file (partition) with the current champion")
    return [lifecycle, evaluation, batch]


def all_tasks_evaluation_job(tasks: list[str]) -> dg.UnresolvedAssetJobDefinition:
    """CI and the UI re-evaluate every task's latest specialist in one run."""
    return dg.define_asset_job(
        "evaluation_job", selection=dg.AssetSelection.assets(*[[name, "evaluation"] for name in tasks]),
        description="Re-evaluate every task's latest specialist on its held-out test split and run the gates")
