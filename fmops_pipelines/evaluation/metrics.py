"""Classification metrics over label indices, reported with label names."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def headline(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (over all declared labels, so a never-predicted class counts as 0)."""
    return {"accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
            "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", labels=range(n_labels),
                                             zero_division=0)), 4)}


def report(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> dict:
    """The `test` block of the evaluation summary: n, accuracy, macro-F1, per-class P/R/F1."""
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=range(len(label_names)), zero_division=0)
    per_class = {name: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                        "f1": round(float(f[i]), 4)} for i, name in enumerate(label_names)}
    return {"n": len(y_true), **headline(y_true, y_pred, len(label_names)), "per_class": per_class}
