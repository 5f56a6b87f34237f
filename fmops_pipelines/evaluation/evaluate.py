"""Evaluate a trained specialist on the held-out test split, beside the baselines it must beat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.evaluation.calibration import expected_calibration_error, reliability_bins
from fmops_pipelines.evaluation.gold_only import gold_only_baselines
from fmops_pipelines.evaluation.metrics import headline, report
from fmops_pipelines.evaluation.slices import slice_metrics
from fmops_pipelines.evaluation.teaching import gold_teacher_baseline, teacher_labels_of, where_the_loss_happened
from fmops_pipelines.fm.base import FoundationModel
from fmops_pipelines.fm.exploration import anchor_ids, calibrated_prompts
from fmops_pipelines.inference.drift import reference_profile
from fmops_pipelines.inference.tuning import Overrides
from fmops_pipelines.specialist.student import Student, measure_throughput, serving_scorer
from fmops_pipelines.supervision.label_matrix import (
    META_COLUMNS,
    anchor_columns,
    labeler_columns,
    precise_columns,
    votes,
    votes_for,
)
from fmops_pipelines.supervision.label_models import FittedLabelModel, majority_vote_proba, prob_columns
from fmops_pipelines.votes import ABSTAIN

# what taught the specialist through a label model's labels: its own recipes, the two-teacher average, and the
# encoder teacher (specialist.teacher: encoder), itself trained on them
LABEL_MODEL_TAUGHT = ("label_model", "label_model+gold", "both_teachers+gold", "encoder")
THROUGHPUT_FM_TEXTS = 256  # at most
THROUGHPUT_FM_SECONDS = 1.0  # the FM is timed on the first test texts that take about this long


def baselines(fm: FoundationModel, prompt_scores: pd.DataFrame, matrix: pd.DataFrame, label_model: FittedLabelModel,
              test: pd.DataFrame, y_test: np.ndarray, dev_labels: pd.Series, label_names: list[str],
              teacher: FittedLabelModel | None = None) -> dict:
    """Best single prompt (top on dev, never abstaining), majority vote, the label model (the labeling stage's
    choice by its own dev score) and, where another candidate's labels taught the specialist, that teacher."""
    k = len(label_names)
    best = calibrated_prompts(prompt_scores.head(1), selected_only=False)[0]
    best_pred = best.proba(fm.score(test["text"].tolist(), best.prompt)).argmax(axis=1)
    L_test = votes_for(matrix, test["id"])
    mv = majority_vote_proba(L_test, k, class_balance(dev_labels, label_names)).argmax(axis=1)
    on_test = lambda model: {**headline(y_test, model.predict_proba(L_test).argmax(axis=1), k), "kind": model.kind}
    return {"best_prompt": headline(y_test, best_pred, k),
            "majority_vote": headline(y_test, mv, k),
            "label_model": on_test(label_model),
            **({"teacher": on_test(teacher)} if teacher is not None and teacher.kind != label_model.kind else {})}


def throughput(fm: FoundationModel, model: Student, texts: list[str], serving: Serving | None = None) -> dict:
    """Texts/s of the FM (uncached) and of the specialist as it serves, measured on the same test texts in one run."""
    rate, settings = specialist_rate(model, texts, serving)
    return {"fm_texts_per_s": fm.measure_throughput(texts[:THROUGHPUT_FM_TEXTS], min_seconds=THROUGHPUT_FM_SECONDS),
            "specialist_texts_per_s": rate, **({"specialist_serving": settings} if settings else {})}


@dataclass(frozen=True)
class Serving:
    """Which registered version is evaluated, and the batch inference settings its spec pins."""

    task: str
    version: str
    fixed: Overrides


def specialist_rate(model: Student, texts: list[str], serving: Serving | None) -> tuple[float, dict | None]:
    """Texts/s of the specialist as batch inference serves it: its serving scorer with the batch size and worker
    processes the tuner picks for this version on this machine, timed on the test texts (the choice is cached
    there, so `fmops predict` then starts with it). A scorer batch inference runs in one process (an encoder),
    or no version to cache for: timed in one process."""
    scorer = serving_scorer(model)
    if serving is None or not getattr(scorer, "fork_safe", False):
        return measure_throughput(model, texts), None
    import pyarrow as pa

    from fmops_pipelines.inference.tuning import SAMPLE_TEXTS, measure, tuned_settings

    n = SAMPLE_TEXTS.get(scorer.architecture, SAMPLE_TEXTS["encoder"])
    sample = pa.RecordBatch.from_pydict({"text": (texts * -(-n // max(len(texts), 1)))[:n]})
    tuned = tuned_settings(serving.task, serving.version, scorer, lambda: sample, "text", "cpu", serving.fixed)
    rate = tuned.texts_per_s or measure(scorer, tuned.settings, sample, "text")  # pinned in the spec: timed now
    return rate, {**tuned.settings.as_dict(), "how": tuned.how}


@dataclass(frozen=True)
class Taught:
    """What the specialist learned from: whose labels (its `taught_by`), the label models' labels on the pool
    (training_labels) and the gold teacher's (None: none)."""

    taught_by: str
    training_labels: pd.DataFrame
    teacher_labels: pd.DataFrame | None

    def diagnose(self, model: Student, label_model: FittedLabelModel, splits: pd.DataFrame, matrix: pd.DataFrame,
                 pred: np.ndarray, y_test: np.ndarray, label_names: list[str]) -> dict | None:
        """evaluation.teaching.where_the_loss_happened for this specialist (None: its teacher's labels are not
        stored, as an encoder teacher's)."""
        test, pool = part(splits, "test"), part(splits, "train")
        found = teacher_labels_of(self.taught_by, label_model, self.training_labels, self.teacher_labels,
                                  votes_for(matrix, test["id"]), test, label_names)
        if found is None:
            return None
        name, pool_labels, teacher_test = found
        rows = pool_labels.merge(pool[["id", "text"]], on="id")
        pool_pred = model.predict_proba(rows["text"].tolist()).argmax(axis=1) if len(rows) else np.zeros(0, int)
        return where_the_loss_happened(name, teacher_test, pool_pred, rows[prob_columns(label_names)].to_numpy(),
                                       pred, y_test, len(label_names))


def evaluate(model: Student, fm: FoundationModel, splits: pd.DataFrame, prompt_scores: pd.DataFrame,
             matrix: pd.DataFrame, label_model: FittedLabelModel, label_names: list[str], slices: Sequence = (),
             champion: tuple[str, Student] | None = None, teacher: FittedLabelModel | None = None,
             serving: Serving | None = None, taught: Taught | None = None) -> dict:
    """Everything gates and reports need, measured on held-out test (label quality on dev).

    `label_model` is the labeling stage's choice (the best labels by dev), `teacher` the candidate whose labels
    the specialist learned from (chosen by its student's dev score; None: the same). They differ where labels
    that are worse as labels teach better: on a prompt-only WRENCH sms spec majority vote scored 0.704 test
    macro-F1 as labels, 0.17 under the best labeler, yet taught students as good as any candidate's.

    Returns the summary blocks (test, baselines, throughput) plus `details`: confusion matrix,
    calibration, per-slice metrics, label coverage (train rows a non-anchor labeler voted on) and dev
    accuracy, and the current champion's
    macro-F1 on the same test rows (for the no-regression gate).
    """
    test, dev = part(splits, "test"), part(splits, "dev")
    y_test, y_dev = label_indices(test["label"], label_names), label_indices(dev["label"], label_names)
    texts = test["text"].tolist()
    probs = model.predict_proba(texts)
    pred = probs.argmax(axis=1)
    k = len(label_names)
    champion_f1 = None
    if champion is not None:
        champion_f1 = headline(y_test, champion[1].predict_proba(texts).argmax(axis=1), k)["macro_f1"]
    # coverage by the labelers the student learns from: an anchor votes everywhere and would always read 1.0
    anchors = anchor_columns(matrix, anchor_ids(prompt_scores))
    L_train = votes(matrix[META_COLUMNS + precise_columns(matrix, anchors)], "train")
    details = {
        "labels": label_names,
        "confusion": confusion_matrix(y_test, pred, labels=range(k)).tolist(),
        "ece": round(expected_calibration_error(probs, y_test), 4),
        "reliability": reliability_bins(probs, y_test),
        "slices": [b for sl in slices for b in slice_metrics(test, y_test, pred, sl, k)],
        "label_coverage": round(float((L_train != ABSTAIN).any(axis=1).mean()) if len(L_train) else 0.0, 4),
        "label_model_dev_accuracy": round(label_model.dev_accuracy if label_model.dev_accuracy is not None else float(
            (label_model.predict_proba(votes_for(matrix, dev["id"])).argmax(axis=1) == y_dev).mean()), 4),
        "champion": {"version": champion[0] if champion else None, "macro_f1": champion_f1},
        # what batch inference compares each partition with (drift): predicted classes and confidence on test
        "reference": reference_profile(probs),
    }
    # the label models' teacher row only where their labels taught the specialist: beside a student of the gold
    # teacher alone, "teacher (majority_vote)" named a model it never learned from
    taught_by_label_model = taught is None or taught.taught_by in LABEL_MODEL_TAUGHT
    base = baselines(fm, prompt_scores, matrix, label_model, test, y_test, dev["label"], label_names,
                     teacher if taught_by_label_model else None)
    base["gold_only"] = gold_only_baselines(fm, dev["text"].tolist(), y_dev, texts, y_test, k)
    if taught is not None:
        gold_teacher = gold_teacher_baseline(taught.teacher_labels, test, y_test, label_names)
        if gold_teacher:
            base["gold_teacher"] = gold_teacher
        details["where_the_loss_happened"] = taught.diagnose(model, teacher or label_model, splits, matrix, pred,
                                                             y_test, label_names)
    return {"test": report(y_test, pred, label_names),
            "baselines": base,
            "throughput": throughput(fm, model, texts, serving),
            "labelers": len(labeler_columns(matrix)),
            "details": details}
