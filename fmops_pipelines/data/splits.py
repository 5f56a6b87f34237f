"""Splits: a few gold dev rows, a held-out gold test split, and the rest as unlabeled train.

Rows with identical text always land in the same split (SMS has ~400 exact duplicates), so nothing in
test was seen verbatim during training or selection. Train rows lose their gold label here, which is
what guarantees training never sees one.

A dataset may declare its own splits (dataset.split_column): declared test rows are kept as they are, so
published numbers stay comparable; dev is drawn from declared dev rows if any, else from labelled train.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fmops_pipelines.errors import DataError
from fmops_pipelines.spec import SplitSpec

SPLITS = ("train", "dev", "test")


def _stratify(labels: pd.Series) -> pd.Series | None:
    """Stratify when every class has at least two rows, else fall back to a plain shuffle."""
    counts = labels.value_counts()
    return labels if len(counts) > 1 and counts.min() >= 2 else None


def make_splits(df: pd.DataFrame, cfg: SplitSpec) -> pd.DataFrame:
    """Assign each row to train/dev/test; returns the rows with a `split` column, train labels removed."""
    labeled = df[df["label"].notna()]
    if labeled.empty:
        raise DataError("dataset: no gold labels at all; dev and test splits need labelled rows")
    if cfg.max_rows is not None and len(df) > cfg.max_rows:
        frac = cfg.max_rows / len(df)
        df, _ = train_test_split(df, train_size=frac, random_state=cfg.seed, stratify=_stratify(df["label"].fillna("?")))
    groups = df.groupby("text", sort=False)["label"].first().dropna()
    n_groups = len(groups)
    n_test = int(round(cfg.test_fraction * n_groups))
    if n_groups < cfg.dev_size + n_test + 10:
        raise DataError(f"dataset: only {n_groups} distinct labelled texts; need more than dev_size "
                        f"({cfg.dev_size}) + test ({n_test}) + 10")
    rest, test = train_test_split(groups, test_size=n_test, random_state=cfg.seed, stratify=_stratify(groups))
    train, dev = train_test_split(rest, test_size=cfg.dev_size, random_state=cfg.seed + 1, stratify=_stratify(rest))
    split_of_text = {**dict.fromkeys(train.index, "train"), **dict.fromkeys(dev.index, "dev"),
                     **dict.fromkeys(test.index, "test")}
    out = df.copy()
    out["split"] = out["text"].map(split_of_text).fillna("train")  # unlabelled texts are train too
    out.loc[out["split"] == "train", "label"] = pd.NA
    order = {s: i for i, s in enumerate(SPLITS)}
    return out.sort_values(["split", "id"], key=lambda c: c.map(order) if c.name == "split" else c).reset_index(drop=True)


def declared_splits(df: pd.DataFrame, cfg: SplitSpec, column: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The dataset's own splits (values train/dev/test in `column`, checked by the reader).

    Test is used as declared. Train and dev rows whose text also appears in test are dropped (counted),
    which keeps the random path's guarantee. Dev is at most cfg.dev_size rows of declared dev (else of
    labelled train); the rest of the declared dev joins train, unlabelled. max_rows thins train only.
    """
    declared = df[column].astype(str)
    test = df[declared == "test"]
    overlaps = (declared != "test") & df["text"].isin(set(test["text"]))
    rest = df[~overlaps & (declared != "test")]
    rest_declared = declared[rest.index]
    pool = rest[(rest_declared == "dev") & rest["label"].notna()] if (rest_declared == "dev").any() else \
        rest[rest["label"].notna()]
    groups = pool.groupby("text", sort=False)["label"].first()
    if len(groups) < min(cfg.dev_size, 10):
        raise DataError(f"dataset.split_column '{column}': only {len(groups)} labelled texts outside test to draw "
                        f"dev from (dev_size {cfg.dev_size})")
    if len(groups) > cfg.dev_size:
        _, groups = train_test_split(groups, test_size=cfg.dev_size, random_state=cfg.seed + 1, stratify=_stratify(groups))
    dev_texts = set(groups.index)
    train = rest[~rest["text"].isin(dev_texts)]
    if cfg.max_rows is not None and len(train) > cfg.max_rows:
        train = train.sample(n=cfg.max_rows, random_state=cfg.seed)
    dev = rest[rest["text"].isin(dev_texts)]  # duplicates of a dev text come along, with its label
    out = pd.concat([train.assign(split="train", label=pd.NA),
                     dev.assign(split="dev", label=dev["text"].map(groups)), test.assign(split="test")])
    out["label"] = out["label"].astype("string")
    order = {s: i for i, s in enumerate(SPLITS)}
    out = out.sort_values(["split", "id"], key=lambda c: c.map(order) if c.name == "split" else c).reset_index(drop=True)
    return out, {"dropped_as_in_test": int(overlaps.sum())}


def split_summary(splits: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Row counts per split and per gold label (train shows only its size)."""
    summary: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        part = splits[splits["split"] == name]
        counts = {"rows": len(part)}
        counts.update({str(k): int(v) for k, v in part["label"].value_counts().items()})
        summary[name] = counts
    return summary


def class_balance(labels: pd.Series, label_names: list[str]) -> np.ndarray:
    """Class prior from gold labels (dev), smoothed so no class gets probability zero."""
    counts = labels.value_counts().reindex(label_names, fill_value=0).to_numpy(dtype=float) + 1.0
    return counts / counts.sum()


def part(splits: pd.DataFrame, name: str) -> pd.DataFrame:
    return splits[splits["split"] == name].reset_index(drop=True)


def label_indices(labels: pd.Series, label_names: list[str]) -> np.ndarray:
    """Gold label names -> integer indices in spec order."""
    index = {name: i for i, name in enumerate(label_names)}
    return labels.map(index).to_numpy(dtype=np.int64)
