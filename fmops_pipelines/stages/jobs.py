"""A task's jobs and schedules, and the cross-task evaluation job CI runs."""

from __future__ import annotations

import json
import os

import dagster as dg

from fmops_pipelines.errors import EnvironmentProblem
from fmops_pipelines.spec import TaskSpec

TRAINING_K8S_CONFIG = "FMOPS_TRAINING_K8S_CONFIG"


def lifecycle_job_name(task: str) -> str:
    return f"{task}_lifecycle"


def evaluation_job_name(task: str) -> str:
    return f"{task}_evaluation"


def batch_job_name(task: str) -> str:
    return f"{task}_batch_inference"


def training_run_tags() -> dict:
    """Kubernetes settings for runs that train (the lifecycle): FMOPS_TRAINING_K8S_CONFIG holds the
    `dagster-k8s/config` the K8s run launcher applies to their pods, e.g. a GPU request and a GPU node
    selector (deploy/helm/values.yaml); batch inference and evaluations stay on the default CPU pods."""
    raw = os.environ.get(TRAINING_K8S_CONFIG, "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EnvironmentProblem(f"{TRAINING_K8S_CONFIG}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise EnvironmentProblem(f"{TRAINING_K8S_CONFIG}: must be a JSON object (dagster-k8s/config), got {raw[:40]}")
    return {"dagster-k8s/config": config}


def task_jobs(spec: TaskSpec) -> list:
    """The jobs of one task; batch inference is partitioned (one run per inbox file), the rest is not."""
    batch_key = dg.AssetKey([spec.name, "batch_predictions"])
    lifecycle = dg.define_asset_job(
        lifecycle_job_name(spec.name),
        selection=dg.AssetSelection.key_prefixes([spec.name]) - dg.AssetSelection.assets(batch_key),
        description=f"{spec.name}: data -> prompts -> weak labels -> specialist -> gates -> champion",
        tags=training_run_tags())
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
