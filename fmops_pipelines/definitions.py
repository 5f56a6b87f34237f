"""The one Dagster entry point: everything in the defs folder (fmops_pipelines/defs), loaded as dg does."""

import warnings
from pathlib import Path

import dagster as dg

import fmops_pipelines.defs

with warnings.catch_warnings():  # Dagster's component loader warns about its own beta internals on every load
    warnings.simplefilter("ignore", dg.BetaWarning)
    warnings.simplefilter("ignore", dg.PreviewWarning)
    # project_root given explicitly so an installed package (no pyproject.toml beside it) loads the same way
    defs = dg.ComponentTree.from_module(defs_module=fmops_pipelines.defs,
                                        project_root=Path(__file__).resolve().parent.parent).build_defs()
