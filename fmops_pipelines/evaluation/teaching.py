"""Whether the specialist learned what it was taught: its teacher's labels beside its own, on test and on the pool.

When the specialist ends below its teacher, a failed gate alone does not say why. Three numbers do: the teacher's
test macro-F1 (how good the labels were), the student's agreement with those labels on the unlabelled pool it
learned from (whether it fitted them), and the student's test macro-F1. A student that agrees little with its
teacher on the pool lacks capacity or training; one that agrees but scores below it on test generalises the
labels worse than the teacher does (the teacher sees features the student cannot, e.g. the FM's embeddings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmops_pipelines.evaluation.metrics import headline
from fmops_pipelines.evaluation.summary import MEANINGFUL_LOSS
from fmops_pipelines.supervision.gold_teacher import FULL, both_teachers, pool_labels
from fmops_pipelines.supervision.label_models import FittedLabelModel, labels_of, prob_columns

GOOD_FIT = 0.95  # pool agreement above which the student is said to have fitted its teacher


def gold_teacher_on_test(teacher_labels: pd.DataFrame | None, test: pd.DataFrame, label_names: list[str]
                         ) -> np.ndarray | None:
    """P[test rows, k] of the gold teacher fitted on every gold row, in `test`'s order (None: no teacher)."""
    if teacher_labels is None or not len(teacher_labels):
        return None
    rows = teacher_labels[(teacher_labels["split"] == "test") & (teacher_labels["fold"] == FULL)]
    return test[["id"]].merge(rows, on="id", how="left")[prob_columns(label_names)].to_numpy()


def gold_teacher_baseline(teacher_labels: pd.DataFrame | None, test: pd.DataFrame, y_test: np.ndarray,
                          label_names: list[str]) -> dict | None:
    """The gold teacher's test metrics with its kind (baselines.gold_teacher), None when there is none."""
    probs = gold_teacher_on_test(teacher_labels, test, label_names)
    if probs is None:
        return None
    return {**headline(y_test, probs.argmax(axis=1), len(label_names)), "kind": str(teacher_labels["teacher"].iloc[0])}


def teacher_labels_of(taught_by: str, label_model: FittedLabelModel, training_labels: pd.DataFrame,
                      teacher_labels: pd.DataFrame | None, L_test: np.ndarray, test: pd.DataFrame,
                      label_names: list[str]) -> tuple[str, pd.DataFrame, np.ndarray] | None:
    """(name, the pool rows it labelled: id + p_<label>, its test probabilities) of the teacher whose labels
    the specialist learned; None for an encoder teacher, whose labels are not stored."""
    cols = prob_columns(label_names)
    lm_pool = labels_of(training_labels, label_model.kind)
    lm_pool = lm_pool[lm_pool["voted"]][["id", *cols]]
    lm_test = label_model.predict_proba(L_test)
    if taught_by in ("label_model", "label_model+gold"):
        return f"label model ({label_model.kind})", lm_pool, lm_test
    gold_test = gold_teacher_on_test(teacher_labels, test, label_names)
    if gold_test is None or taught_by not in ("gold_teacher+gold", "both_teachers+gold"):
        return None
    gold_pool = pool_labels(teacher_labels)[["id", *cols]]
    if taught_by == "gold_teacher+gold":
        return "gold teacher", gold_pool, gold_test
    # as the recipe taught: the mean where the label model voted, the gold teacher's alone elsewhere
    both = gold_pool.merge(lm_pool, on="id", how="left", suffixes=("_gold", ""))
    both[cols] = both_teachers(both[cols].to_numpy(), both[[f"{c}_gold" for c in cols]].to_numpy())
    return "label model and gold teacher (mean)", both[["id", *cols]], (lm_test + gold_test) / 2


def where_the_loss_happened(teacher: str, teacher_test: np.ndarray, pool_pred: np.ndarray, pool_teacher: np.ndarray,
                            student_test: np.ndarray, y_test: np.ndarray, k: int) -> dict:
    """The three numbers and what they say (see the module docstring)."""
    t = headline(y_test, teacher_test.argmax(axis=1), k)["macro_f1"]
    s = headline(y_test, student_test, k)["macro_f1"]
    agreement = round(float((pool_pred == pool_teacher.argmax(axis=1)).mean()), 4) if len(pool_pred) else None
    if s >= t:
        finding = "the student is at or above its teacher on test"
    elif s >= t - MEANINGFUL_LOSS:
        finding = f"the student is within {MEANINGFUL_LOSS} of its teacher on test (below it by {t - s:.4f})"
    elif agreement is not None and agreement < GOOD_FIT:
        finding = (f"the student fits its teacher's labels on the pool poorly (agrees on {agreement:.1%} of rows): "
                   "its capacity or training is the limit")
    else:
        finding = ("the student fits its teacher's labels on the pool but generalises them worse than the teacher "
                   "on test: the teacher sees what the student's features do not")
    return {"teacher": teacher, "teacher_test_macro_f1": t, "student_pool_agreement": agreement,
            "student_test_macro_f1": s, "loss": round(t - s, 4), "finding": finding}
