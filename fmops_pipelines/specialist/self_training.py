"""One self-training round: the student labels the unlabeled rows no labeler covered, keeps the ones it
is confident about, and a fresh student trains on the label-model labels plus those.

This is how a specialist can reach beyond the labelers' coverage; the confidence cut is on the
student's dev-calibrated probabilities, so "0.9" means what it says on dev.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmops_pipelines.specialist.ngram import NgramConfig, NgramSpecialist, TrainConfig, TrainHistory, train_ngram


@dataclass
class SelfTrainingReport:
    pseudo_labeled: int
    candidates: int
    first_round_dev_macro_f1: float
    kept_second_round: bool


def self_train(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
               unlabeled: Sequence[str], dev_texts: Sequence[str], y_dev: np.ndarray, threshold: float = 0.9,
               on_epoch=None, checkpoint: Path | None = None
               ) -> tuple[NgramSpecialist, TrainHistory, SelfTrainingReport]:
    """Train, pseudo-label confident unlabeled rows, retrain; keep the second model only if dev agrees."""
    first, history = train_ngram(cfg, train_cfg, texts, soft_labels, dev_texts, y_dev, on_epoch, checkpoint)
    report = SelfTrainingReport(0, len(unlabeled), history.best_dev_macro_f1, False)
    if not len(unlabeled):
        return first, history, report
    probs = first.predict_proba(list(unlabeled))
    confident = probs.max(axis=1) >= threshold
    report.pseudo_labeled = int(confident.sum())
    if not confident.any():
        return first, history, report
    pseudo = np.eye(probs.shape[1], dtype=np.float32)[probs[confident].argmax(axis=1)]
    second_cfg = NgramConfig(**{**first.cfg.__dict__, "temperature": 1.0})
    second, second_history = train_ngram(
        second_cfg, train_cfg, [*texts, *np.asarray(list(unlabeled), dtype=object)[confident]],
        np.concatenate([soft_labels, pseudo]), dev_texts, y_dev, on_epoch, checkpoint)
    if second_history.best_dev_macro_f1 >= history.best_dev_macro_f1:  # dev decides, never test
        report.kept_second_round = True
        return second, second_history, report
    return first, history, report
