"""What the specialist learns from: covered train rows with their probabilistic labels, and the
uncovered ones as the pool for self-training. Gold labels never enter here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmops_pipelines.data.splits import part
from fmops_pipelines.errors import DataError
from fmops_pipelines.supervision.label_models import prob_columns, shift_to_prior


def training_rows(task: str, training_labels: pd.DataFrame, splits: pd.DataFrame, label_names: list[str],
                  prior: np.ndarray | None = None, anchor_rows: bool = False) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, soft targets, unlabeled texts); with `prior`, targets are shifted to that class balance; with
    `anchor_rows`, the rows only an anchor labeler voted on are learned too, not left to self-training."""
    train_texts = part(splits, "train")[["id", "text"]]
    learned = training_labels["voted" if anchor_rows and "voted" in training_labels else "covered"]
    rows = training_labels[learned].merge(train_texts, on="id")
    if rows.empty:
        raise DataError(f"{task}: no training rows: every labeler abstained on every unlabeled row "
                        "(see weak_label_matrix coverage; add prompts or labeling functions)")
    unlabeled = training_labels[~learned].merge(train_texts, on="id")["text"].tolist()
    targets = rows[prob_columns(label_names)].to_numpy()
    if prior is not None:
        targets = shift_to_prior(targets, prior)
    return rows["text"].tolist(), targets, unlabeled
