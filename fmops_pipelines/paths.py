"""Where fmops keeps things: one FMOPS_HOME for run state, one data home for downloaded datasets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fmops_home() -> Path:
    """All run state (Dagster, MLflow, FM cache, asset storage); default ./.fmops."""
    return Path(os.environ.get("FMOPS_HOME", ".fmops")).resolve()


def data_home() -> Path:
    """Downloaded datasets, shared across projects; default the user cache dir."""
    configured = os.environ.get("FMOPS_DATA_HOME")
    if configured:
        return Path(configured).resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fmops")) / "datasets"


def assets_dir() -> Path:
    """The user's task specs: ./assets, or FMOPS_ASSETS_DIR."""
    return Path(os.environ.get("FMOPS_ASSETS_DIR", "assets")).resolve()


def memos_enabled() -> bool:
    """Finished trainings and label-model fits are reused by the same training (FMOPS_TRAINING_MEMO=0: every one
    runs again, e.g. to time training); on by default."""
    return os.environ.get("FMOPS_TRAINING_MEMO", "1") != "0"


def dagster_home() -> Path:
    return fmops_home() / "dagster"


def storage_dir() -> Path:
    return fmops_home() / "storage"


def predictions_dir(task: str) -> Path:
    """Batch inference outputs, one file per partition."""
    return fmops_home() / "predictions" / task


def reports_dir() -> Path:
    """Evaluation reports and their plots, one folder per task: static files, published at reports_url()."""
    return fmops_home() / "reports"


DEFAULT_REPORTS_URL = "http://localhost:3030"


def reports_url() -> str:
    """Where a browser finds reports_dir(): FMOPS_REPORTS_URL, else the server `fmops ui` starts beside the UI.
    In a deployment, point it at wherever that folder is published (a web server, a bucket)."""
    return os.environ.get("FMOPS_REPORTS_URL", DEFAULT_REPORTS_URL).rstrip("/")


def fm_cache_path() -> Path:
    """FM answers, keyed by everything that changes them: FMOPS_FM_CACHE to share one cache between homes
    (answers are the expensive part of a run), else FMOPS_HOME/fm_cache.sqlite."""
    configured = os.environ.get("FMOPS_FM_CACHE")
    return Path(configured).resolve() if configured else fmops_home() / "fm_cache.sqlite"


# Read once at import: MLflow itself exports MLFLOW_TRACKING_URI into os.environ once a model is logged,
# which must not pin a process to the first FMOPS_HOME it used.
_USER_MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def mlflow_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when the user set it (production server), else SQLite under FMOPS_HOME."""
    return _USER_MLFLOW_TRACKING_URI or f"sqlite:///{fmops_home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    return (fmops_home() / "mlartifacts").as_uri()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside `path` for a writer to fill; renamed onto `path` only if the block succeeds, so a crash
    never leaves a half-written file behind (a failed block's temp file is removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written file behind."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
