"""Evaluate a trained specialist on the held-out test split, beside the baselines it must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.evaluation.metrics import headline, report
from fmops_pipelines.fm.base import FoundationModel
from fmops_pipelines.fm.exploration import calibrated_prompts
from fmops_pipelines.specialist.ngram import NgramSpecialist, measure_throughput
from fmops_pipelines.supervision.label_matrix import labeler_columns, votes
from fmops_pipelines.supervision.label_models import FittedLabelModel, majority_vote_proba

THROUGHPUT_FM_TEXTS = 256
THROUGHPUT_SPECIALIST_TEXTS = 5000


def baselines(fm: FoundationModel, prompt_scores: pd.DataFrame, matrix: pd.DataFrame, label_model: FittedLabelModel,
              test: pd.DataFrame, y_test: np.ndarray, dev_labels: pd.Series, label_names: list[str]) -> dict:
    """Best single prompt (top on dev, never abstaining), majority vote and the label model, on test."""
    k = len(label_names)
    best = calibrated_prompts(prompt_scores.head(1), selected_only=False)[0]
    best_pred = best.proba(fm.score(test["text"].tolist(), best.prompt)).argmax(axis=1)
    L_test = votes(matrix.set_index("id").loc[test["id"]].reset_index())
    mv = majority_vote_proba(L_test, k, class_balance(dev_labels, label_names)).argmax(axis=1)
    return {"best_prompt": headline(y_test, best_pred, k),
            "majority_vote": headline(y_test, mv, k),
            "label_model": headline(y_test, label_model.predict_proba(L_test).argmax(axis=1), k)}


def throughput(fm: FoundationModel, model: NgramSpecialist, texts: list[str]) -> dict:
    """Texts/s of the FM (uncached) and of the specialist, measured on the same test texts in one run."""
    fm_texts = texts[:THROUGHPUT_FM_TEXTS]
    reps = -(-THROUGHPUT_SPECIALIST_TEXTS // max(len(texts), 1))
    return {"fm_texts_per_s": fm.measure_throughput(fm_texts),
            "specialist_texts_per_s": measure_throughput(model, (texts * reps)[:THROUGHPUT_SPECIALIST_TEXTS])}


def evaluate(model: NgramSpecialist, fm: FoundationModel, splits: pd.DataFrame, prompt_scores: pd.DataFrame,
             matrix: pd.DataFrame, label_model: FittedLabelModel, label_names: list[str]) -> dict:
    """Everything in the summary that is measured: test report, baselines, throughput, labeler count."""
    test = part(splits, "test")
    y_test = label_indices(test["label"], label_names)
    pred = model.predict_proba(test["text"].tolist()).argmax(axis=1)
    return {"test": report(y_test, pred, label_names),
            "baselines": baselines(fm, prompt_scores, matrix, label_model, test, y_test,
                                   part(splits, "dev")["label"], label_names),
            "throughput": throughput(fm, model, test["text"].tolist()),
            "labelers": len(labeler_columns(matrix))}
