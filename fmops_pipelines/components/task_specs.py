"""The component that turns the user's task specs (`assets/<task>/task.yaml`) into Dagster definitions.

Declared once in a defs folder (`fmops_pipelines/defs/tasks/defs.yaml` here; any dg project can do the
same), it makes every task's assets, checks, jobs and schedules visible to `dg list defs`, `dg check defs`
and the UI, while task.yaml stays the user's interface.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from fmops_pipelines import paths


class FmopsTasks(dg.Component, dg.Model, dg.Resolvable):
    """Every task spec under `assets_dir` (empty: ./assets or FMOPS_ASSETS_DIR), or only those in `tasks`."""

    assets_dir: str = ""
    tasks: list[str] | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from fmops_pipelines.spec import discover_specs
        from fmops_pipelines.stages import definitions_for

        root = Path(self.assets_dir) if self.assets_dir else paths.assets_dir()
        return definitions_for({n: s for n, s in discover_specs(root).items() if self.tasks is None or n in self.tasks})
