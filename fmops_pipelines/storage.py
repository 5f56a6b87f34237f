"""Asset values on disk: DataFrames as Parquet, arrays as .npy, dicts as JSON, anything else pickled.

Writes go to a temp file and are renamed into place, so a failed run never leaves a torn value and
the previous good value stays readable.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmops_pipelines.paths import atomic_write_bytes

SUFFIXES = (".parquet", ".npy", ".json", ".pkl")


def write_value(stem: Path, value: Any) -> Path:
    if isinstance(value, pd.DataFrame):
        buf = io.BytesIO()
        value.to_parquet(buf, index=False)
        path, payload = stem.with_suffix(".parquet"), buf.getvalue()
    elif isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        path, payload = stem.with_suffix(".npy"), buf.getvalue()
    elif isinstance(value, (dict, list)):
        path, payload = stem.with_suffix(".json"), json.dumps(value, indent=2, default=str).encode()
    else:
        path, payload = stem.with_suffix(".pkl"), pickle.dumps(value)
    atomic_write_bytes(path, payload)
    for other in SUFFIXES:  # a value that changed type must not leave its old file to be read back
        if other != path.suffix:
            stem.with_suffix(other).unlink(missing_ok=True)
    return path


def read_value(stem: Path) -> Any:
    for suffix in SUFFIXES:
        path = stem.with_suffix(suffix)
        if path.exists():
            if suffix == ".parquet":
                return pd.read_parquet(path)
            if suffix == ".npy":
                return np.load(path, allow_pickle=False)
            if suffix == ".json":
                return json.loads(path.read_text())
            return pickle.loads(path.read_bytes())
    raise FileNotFoundError(stem)


def exists(stem: Path) -> bool:
    return any(stem.with_suffix(s).exists() for s in SUFFIXES)




def latest(task: str, asset: str) -> Any:
    """The latest stored value of a task asset under FMOPS_HOME, or None if it was never materialized."""
    from fmops_pipelines.paths import storage_dir

    stem = storage_dir() / task / asset
    return read_value(stem) if exists(stem) else None
