"""Splits: the gold rows (split "dev"), a held-out gold test split, and the unlabelled pool (split "train").

Every labelled row outside test is gold unless the spec caps gold (splits.dev_size, e.g. the shipped specs
simulate a team with ~200 labels): gold fits the gold teacher, teaches the student and makes every choice, each
choice scored out of fold (gold_folds). Rows with identical text always land in the same split (SMS has ~400
exact duplicates), so nothing in test was seen verbatim during training or selection. Labels beyond the cap are
removed here, and test is touched by nothing but the evaluation.

A dataset may declare its own splits (dataset.split_column): declared test rows are kept as they are, so
published numbers stay comparable; gold is every labelled row of the declared dev and train.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fmops_pipelines.errors import DataError
from fmops_pipelines.spec import SplitSpec

SPLITS = ("train", "dev", "test")
# Gold rows a review queue chose from the pool (review.queue's "label" rows): chosen for being hard or uncertain,
# they are no sample of the task, so they train every fold's model and no out-of-fold figure reads them
# (gold_folds). Only present in the splits where a person labelled such rows.
PICKED = "picked_by_queue"


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
    n_test = round(cfg.test_fraction * n_groups)
    if n_groups < (cfg.dev_size or 10) + n_test + 10:
        raise DataError(f"dataset: only {n_groups} distinct labelled texts; need more than dev_size "
                        f"({cfg.dev_size or 10}) + test ({n_test}) + 10")
    rest, test = train_test_split(groups, test_size=n_test, random_state=cfg.seed, stratify=_stratify(groups))
    dev, train = _cap(rest, cfg)
    split_of_text = {**dict.fromkeys(train.index, "train"), **dict.fromkeys(dev.index, "dev"),
                     **dict.fromkeys(test.index, "test")}
    out = df.copy()
    out["split"] = out["text"].map(split_of_text).fillna("train")  # unlabelled texts are train too
    held = out["split"].isin(["dev", "test"]) & out["label"].isna()  # an unlabelled copy of a gold or test text
    out.loc[held, "label"] = out.loc[held, "text"].map(groups)  # takes its label: identical texts, one label
    out.loc[out["split"] == "train", "label"] = pd.NA
    order = {s: i for i, s in enumerate(SPLITS)}
    return out.sort_values(["split", "id"], key=lambda c: c.map(order) if c.name == "split" else c).reset_index(drop=True)


def declared_splits(df: pd.DataFrame, cfg: SplitSpec, column: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The dataset's own splits (values train/dev/test in `column`, checked by the reader).

    Test is used as declared. Train and dev rows whose text also appears in test are dropped (counted),
    which keeps the random path's guarantee. Gold is every labelled row of the declared dev and train, or
    cfg.dev_size of them; rows beyond that cap join train, unlabelled. max_rows thins train only.
    """
    declared = df[column].astype(str)
    test = df[declared == "test"]
    overlaps = (declared != "test") & df["text"].isin(set(test["text"]))
    rest = df[~overlaps & (declared != "test")]
    groups = rest[rest["label"].notna()].groupby("text", sort=False)["label"].first()
    if len(groups) < 10:
        raise DataError(f"dataset.split_column '{column}': only {len(groups)} labelled texts outside test to draw "
                        "gold from (at least 10)")
    groups, _ = _cap(groups, cfg)
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


def _cap(groups: pd.Series, cfg: SplitSpec) -> tuple[pd.Series, pd.Series]:
    """(gold, the rest): every labelled text, or a stratified draw of cfg.dev_size of them."""
    if cfg.dev_size is None or len(groups) <= cfg.dev_size:
        return groups, groups.iloc[:0]
    seed = cfg.seed + 1 if cfg.gold_seed is None else cfg.gold_seed
    rest, gold = train_test_split(groups, test_size=cfg.dev_size, random_state=seed, stratify=_stratify(groups))
    return gold, rest


def with_reviewed(out: pd.DataFrame, dataset: pd.DataFrame, reviewed: pd.DataFrame | None,
                  picked: frozenset[str] | set[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    """The splits with the labels people gave in review rounds (review.store.GoldStore.reviewed): every reviewed row
    is gold whatever the cap (a pool row a person labelled joins gold; a gold row a person re-checked takes the
    person's label), and so is every row with the same text. Test rows are never changed. A label given for a text
    that has since changed, or for a row that is gone, is left out and counted. `picked`: the ids a review queue
    chose from the pool (GoldStore.picked); those that joined gold here are marked in column PICKED."""
    from fmops_pipelines.review.store import text_sha

    counts = {"reviewed_rows": 0, "reviewed_stale": 0, "reviewed_missing": 0, "reviewed_in_test": 0}
    if reviewed is None or reviewed.empty:
        return out, counts
    source = dataset.assign(id=dataset["id"].astype(str)).drop_duplicates("id").set_index("id")
    labels = {}
    test_texts = set(out.loc[out["split"] == "test", "text"])
    for row_id, sha, label in zip(reviewed["row_id"], reviewed["text_sha"], reviewed["label"]):
        if row_id not in source.index:
            counts["reviewed_missing"] += 1
        elif text_sha(source.at[row_id, "text"]) != sha:
            counts["reviewed_stale"] += 1
        elif source.at[row_id, "text"] in test_texts:
            counts["reviewed_in_test"] += 1
        else:
            labels[source.at[row_id, "text"]] = label
    counts["reviewed_rows"] = len(labels)
    present = set(out["id"].astype(str))
    dropped = source[source["text"].isin(labels) & ~source.index.isin(present)].reset_index()  # e.g. by max_rows
    out = pd.concat([out, dropped[[c for c in out.columns if c in dropped.columns]]], ignore_index=True)
    hit = out["text"].isin(labels) & (out["split"] != "test")
    picked_texts = {source.at[i, "text"] for i in picked if i in source.index}
    joined = hit & (out["split"] != "dev") & out["text"].isin(picked_texts)  # re-checked gold stays a sample
    out.loc[hit, "split"] = "dev"
    if joined.any():
        out[PICKED] = joined.to_numpy()
    out.loc[hit, "label"] = out.loc[hit, "text"].map(labels)
    order = {s: i for i, s in enumerate(SPLITS)}
    return out.sort_values(["split", "id"], key=lambda c: c.map(order) if c.name == "split" else c).reset_index(
        drop=True), counts


def task_splits(spec, dataset: pd.DataFrame, reviewed: pd.DataFrame | None,
                picked: frozenset[str] | set[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    """(splits, what made them): declared or drawn, reviewed labels applied (`picked`: see with_reviewed), the pool
    checked, and with fm.budget the `fm_sample` column (data.fm_budget). The splits asset and `fmops plan` both
    call this."""
    from fmops_pipelines.data.fm_budget import with_fm_sample

    column = spec.dataset.declared_split_column
    if column:
        out, counts = declared_splits(dataset, spec.splits, column)
        extra = {"declared_by": column, **counts}
    else:
        out, extra = make_splits(dataset, spec.splits), {"declared_by": "random (dataset.split_column unset)"}
    out, counts = with_reviewed(out, dataset, reviewed, picked)
    counts["reviewed_picked_by_queue"] = int(out[PICKED].sum()) if PICKED in out.columns else 0
    require_pool(out)
    return with_fm_sample(out, spec.fm.budget, spec.splits.seed), {**extra, **counts}


def require_pool(splits: pd.DataFrame) -> None:
    """The specialist learns from unlabelled rows: a dataset whose every row is gold or test leaves it none."""
    if not (splits["split"] == "train").any():
        raise DataError("dataset: every row outside test is a gold row, so no unlabelled rows are left for the "
                        "weak labelers and the student; add unlabelled texts or cap gold with splits.dev_size")


def gold_folds(y_gold: np.ndarray, k: int, seed: int = 0, folds: int = 5,
               train_only: np.ndarray | None = None) -> np.ndarray:
    """A fold number per gold row (stratified): every choice made on gold is scored on rows of a fold by what
    was fitted on the other folds. Fewer folds where the rarest label has fewer rows; -1 everywhere (no
    cross-fitting possible) where some label has under 2. `train_only` rows (picked_gold) get -1: every fold's
    model trains on them and no score reads them."""
    from sklearn.model_selection import StratifiedKFold

    out = np.full(len(y_gold), -1, dtype=np.int64)
    rows = np.flatnonzero(~train_only) if train_only is not None else np.arange(len(y_gold))
    n = int(min(folds, np.bincount(y_gold[rows], minlength=k).min()))
    if n < 2:
        return out
    for f, (_, held) in enumerate(StratifiedKFold(n, shuffle=True, random_state=seed).split(rows, y_gold[rows])):
        out[rows[held]] = f
    return out


def picked_gold(splits: pd.DataFrame) -> np.ndarray | None:
    """Per gold row (in the splits' order), whether a review queue picked it (PICKED); None where none was."""
    if PICKED not in splits.columns:
        return None
    return splits.loc[splits["split"] == "dev", PICKED].fillna(False).to_numpy(dtype=bool)


def thin_gold_labels(splits: pd.DataFrame, label_names: list[str], least: int = 2) -> dict[str, int]:
    """Each label with under `least` gold rows that a fold can score (gold a queue picked trains, never scores),
    and its count: what keeps gold_folds from cross-fitting, named for the user."""
    gold = splits[splits["split"] == "dev"]
    picked = picked_gold(splits)
    counts = (gold[~picked] if picked is not None else gold)["label"].value_counts()
    return {name: int(counts.get(name, 0)) for name in label_names if counts.get(name, 0) < least}


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
