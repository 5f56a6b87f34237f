"""Resources for every task, each setting bound to an environment variable when it is set (dg.EnvVar: the
launchpad shows the variable, never its value), else the embedded FMOPS_HOME default; and the executor
(Celery workers when FMOPS_EXECUTOR=celery, see fmops_pipelines.execution)."""

import os

import dagster as dg

from fmops_pipelines.execution import executor_def
from fmops_pipelines.resources import (
    ComputeResource,
    FmopsHome,
    FmopsIOManager,
    FoundationModelResource,
    LabelStudioResource,
)
from fmops_pipelines.tracking import MlflowTracking


def env_or(name: str, default: str = ""):
    return dg.EnvVar(name) if os.environ.get(name) else default


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={
        "io_manager": FmopsIOManager(),
        "home": FmopsHome(path=env_or("FMOPS_HOME")),
        "mlflow": MlflowTracking(tracking_uri=env_or("MLFLOW_TRACKING_URI")),
        "fm": FoundationModelResource(base_url=env_or("FMOPS_FM_BASE_URL"), api_key=env_or("FMOPS_FM_API_KEY")),
        "compute": ComputeResource(device=env_or("FMOPS_DEVICE", "auto")),
        "label_studio": LabelStudioResource(url=env_or("LABEL_STUDIO_URL"), api_key=env_or("LABEL_STUDIO_API_KEY")),
    }, executor=executor_def())
