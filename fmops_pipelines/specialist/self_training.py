"""One self-training round: the student labels the unlabeled rows no labeler covered, keeps the ones it
is confident about, and a fresh student trains on the label-model labels plus those.

This is how a specialist can reach beyond the labelers' coverage; the confidence cut is on the
student's dev-calibrated probabilities, so "0.9" means what it says on dev.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fmops_pipelines.specialist.student import Student
from fmops_pipelines.specialist.training_loop import TrainHistory

TrainFn = Callable[[Sequence[str], np.ndarray], tuple[Student, TrainHistory]]


@dataclass
class SelfTrainingReport:
    pseudo_labeled: int
    candidates: int
    first_round_dev_macro_f1: float
    kept_second_round: bool


def self_train(train: TrainFn, texts: Sequence[str], soft_labels: np.ndarray, unlabeled: Sequence[str],
               threshold: float = 0.9, keep: bool | None = None) -> tuple[Student, TrainHistory, SelfTrainingReport]:
    """Train, pseudo-label confident unlabeled rows, retrain; keep the second model only if dev agrees.

    `train(texts, soft_labels)` trains one fresh student (early-stopped and calibrated on dev). `keep`: decided
    already (a refit on rows its dev includes, where dev cannot decide): True runs and keeps the second round,
    False skips it.
    """
    if keep is False:
        unlabeled = []
    first, history = train(texts, soft_labels)
    report = SelfTrainingReport(0, len(unlabeled), history.best_dev_macro_f1, False)
    if not len(unlabeled):
        return first, history, report
    probs = first.predict_proba(list(unlabeled))
    confident = probs.max(axis=1) >= threshold
    report.pseudo_labeled = int(confident.sum())
    if not confident.any():
        return first, history, report
    pseudo = np.eye(probs.shape[1], dtype=np.float32)[probs[confident].argmax(axis=1)]
    second, second_history = train([*texts, *np.asarray(list(unlabeled), dtype=object)[confident]],
                                   np.concatenate([soft_labels, pseudo]))
    if keep or second_history.best_dev_macro_f1 >= history.best_dev_macro_f1:  # dev decides, never test
        report.kept_second_round = True
        return second, second_history, report
    return first, history, report
