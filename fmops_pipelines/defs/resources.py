"""Resources: asset storage under FMOPS_HOME, MLflow tracking, the FM cache location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from fmops_pipelines import paths, storage
from fmops_pipelines.tracking import MlflowTracking


class FmopsIOManager(dg.ConfigurableIOManager):
    """Stores each asset at <storage>/<task>/<asset>.<ext>; empty base_dir means FMOPS_HOME/storage."""

    base_dir: str = ""

    def _stem(self, key: dg.AssetKey) -> Path:
        return Path(self.base_dir or paths.storage_dir()).joinpath(*key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = storage.write_value(self._stem(context.asset_key), obj)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        stem = self._stem(context.asset_key)
        try:
            return storage.read_value(stem)
        except FileNotFoundError:
            raise dg.Failure(f"{context.asset_key.to_user_string()}: not materialized yet ({stem}.*)") from None


class FMCacheResource(dg.ConfigurableResource):
    """Where FM responses persist; empty path means FMOPS_HOME/fm_cache.sqlite."""

    path: str = ""

    def open(self):
        from fmops_pipelines.fm.cache import FMCache

        return FMCache(Path(self.path) if self.path else paths.fm_cache_path())


def default_resources() -> dict[str, Any]:
    return {"io_manager": FmopsIOManager(), "mlflow": MlflowTracking(), "fm_cache": FMCacheResource()}
