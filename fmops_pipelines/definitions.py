"""The one Dagster entry point: Definitions for every task found in assets/ (or FMOPS_ASSETS_DIR)."""

from fmops_pipelines.defs.factory import build_definitions
from fmops_pipelines.spec import discover_specs

defs = build_definitions(discover_specs())
