"""The Dagster layer of one task, one module per lifecycle stage (data -> exploration -> labeling ->
training -> evaluation -> review -> deployment -> batch inference), each asset a decorated function over one core
call, plus the sensors and schedules that run a task on its own."""

from __future__ import annotations

import dagster as dg

from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages import (
    batch_inference,
    data,
    deployment,
    evaluation,
    exploration,
    labeling,
    review,
    training,
)
from fmops_pipelines.stages.automation import task_automation
from fmops_pipelines.stages.jobs import all_tasks_evaluation_job, task_jobs

STAGES = (data, exploration, labeling, training, evaluation, review, deployment, batch_inference)


def task_definitions(spec: TaskSpec) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule of one task (resources come from fmops_pipelines/defs)."""
    sensors, schedules = task_automation(spec)
    return dg.Definitions(assets=[d for stage in STAGES for d in stage.build(spec)], jobs=task_jobs(spec),
                          sensors=sensors, schedules=schedules)


def definitions_for(specs: dict[str, TaskSpec]) -> dg.Definitions:
    """Every task's definitions plus the cross-task evaluation job (what the FmopsTasks component builds)."""
    if not specs:
        return dg.Definitions()
    return dg.Definitions.merge(*(task_definitions(s) for s in specs.values()),
                                dg.Definitions(jobs=[all_tasks_evaluation_job(list(specs))]))
