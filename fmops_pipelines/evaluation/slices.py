"""Slices of the test split (text-length buckets, metadata columns) and metrics per bucket."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from fmops_pipelines.evaluation.metrics import headline


def bucket_labels(rows: pd.DataFrame, slice_spec) -> pd.Series:
    """The bucket of each row for one SliceSpec, e.g. 'chars 40-119' or the column's value."""
    if slice_spec.length_buckets is not None:
        bounds = [0, *slice_spec.length_buckets, np.inf]
        names = [f"chars {lo}-{int(hi) - 1}" if np.isfinite(hi) else f"chars >={lo}"
                 for lo, hi in itertools.pairwise(bounds)]
        return pd.cut(rows["text"].str.len(), bins=bounds, right=False, labels=names).astype(str)
    if slice_spec.column not in rows.columns:
        from fmops_pipelines.errors import DataError

        raise DataError(f"slices.{slice_spec.name}: column '{slice_spec.column}' is not in the dataset "
                        f"(columns: {list(rows.columns)})")
    return rows[slice_spec.column].astype(str)


def slice_metrics(rows: pd.DataFrame, y: np.ndarray, pred: np.ndarray, slice_spec, n_labels: int) -> list[dict]:
    """Accuracy and macro-F1 per bucket; `gated` marks buckets with at least min_rows rows."""
    buckets = bucket_labels(rows.reset_index(drop=True), slice_spec)
    out = []
    for bucket in sorted(buckets.unique()):
        mask = (buckets == bucket).to_numpy()
        out.append({"slice": slice_spec.name, "bucket": bucket, "n": int(mask.sum()),
                    **headline(y[mask], pred[mask], n_labels), "gated": bool(mask.sum() >= slice_spec.min_rows)})
    return out
