"""Dagster resources: where state lives, the FM endpoint, the compute device, asset storage.

Each setting is a resource field, so `fmops_pipelines/defs/resources.py` can bind it to an environment
variable with `dg.EnvVar` (shown in the launchpad) and a run can override it in its config. Empty
fields fall back to the FMOPS_HOME defaults, which keeps the embedded setup free of configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from fmops_pipelines import paths, storage


class FmopsHome(dg.ConfigurableResource):
    """The run-state folder (reports, checkpoints); empty path means FMOPS_HOME (default ./.fmops)."""

    path: str = ""

    @property
    def root(self) -> Path:
        return Path(self.path).resolve() if self.path else paths.fmops_home()

    def reports(self, task: str) -> Path:
        return self.root / "reports" / task

    def report_url(self, file: Path) -> str:
        """The browser address of a file under the reports folder (see paths.reports_url)."""
        return f"{paths.reports_url()}/{file.relative_to(self.root / 'reports').as_posix()}"

    def publish_plot(self, task: str, folder: str, name: str, png: bytes, alt: str) -> dg.MetadataValue:
        """Write a plot under reports/<task>/<folder>/ and return Markdown that shows it inline on the asset
        page: Dagster renders short Markdown in place, but hides a long (base64) one behind a link."""
        path = self.reports(task) / folder / f"{name}.png"
        paths.atomic_write_bytes(path, png)
        return dg.MetadataValue.md(f"![{alt}]({self.report_url(path)})")

    def checkpoints(self, task: str) -> Path:
        return self.root / "checkpoints" / task


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


class FoundationModelResource(dg.ConfigurableResource):
    """The FM a task spec names, with its response cache; `base_url` and `api_key` override the spec's
    OpenAI-compatible endpoint and key variable (the key is a secret: never logged or cached)."""

    cache_path: str = ""  # empty: FMOPS_HOME/fm_cache.sqlite
    base_url: str = ""
    api_key: str = ""

    def for_spec(self, fm_spec):
        from fmops_pipelines.fm.cache import FMCache
        from fmops_pipelines.fm.factory import fm_from_spec

        if self.base_url:
            fm_spec = fm_spec.model_copy(update={"base_url": self.base_url})
        cache = FMCache(Path(self.cache_path) if self.cache_path else paths.fm_cache_path())
        return fm_from_spec(fm_spec, cache, api_key=self.api_key or None)


class ComputeResource(dg.ConfigurableResource):
    """Where students train and predict: 'auto' (cuda when present, else cpu), 'cpu', 'cuda' or 'cuda:N'."""

    device: str = "auto"

    def resolve(self, override: str = "") -> str:
        import torch

        device = override or self.device
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            from fmops_pipelines.errors import StateError

            raise StateError(f"device '{device}' requested but torch sees no CUDA device on this machine")
        return device


class LabelStudioResource(dg.ConfigurableResource):
    """The Label Studio server review rounds go through (deploy/local/label_studio.sh starts one): its URL and API
    token, each bound to LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY (the token is a secret: never logged)."""

    url: str = ""
    api_key: str = ""

    def client(self):
        """A review.label_studio.LabelStudio, or None where no server is configured."""
        from fmops_pipelines.review.label_studio import LabelStudio

        return LabelStudio(self.url, self.api_key) if self.url and self.api_key else None
