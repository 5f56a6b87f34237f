"""Dagster component types of fmops (listed by `dg list components`)."""

from fmops_pipelines.components.task_specs import FmopsTasks

__all__ = ["FmopsTasks"]
