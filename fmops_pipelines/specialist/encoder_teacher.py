"""A fine-tuned encoder as the fast student's teacher (knowledge distillation, Hinton et al. 2015).

The encoder learns the label model's labels better than the n-gram student can (it reads meaning, not
surface n-grams) but runs ~1000x slower. So it is trained once, labels every train row (the ones no
labeler covered included) with its dev-calibrated probabilities, and the n-gram student that ships learns
those: the encoder's judgement at the n-gram's speed. The same n-gram trained directly on the label
model's labels stays a candidate, so dev can say when the distillation did not pay.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmops_pipelines.specialist.selection import Trained, dev_scores, train_student

TEACHER = "encoder"


@dataclass
class EncoderTeacher:
    trained: Trained  # the encoder fine-tuned on the label model's labels (no self-training round: it labels
    # the uncovered rows itself)
    texts: list[str]  # every train row it labelled: the covered ones, then the uncovered ones
    soft_labels: np.ndarray  # its dev-calibrated probabilities on `texts`
    labeling_seconds: float
    dev_pred: np.ndarray  # its predicted class per dev row

    def summary(self, y_dev: np.ndarray) -> dict:
        dev = dev_scores(self.dev_pred, y_dev, len(self.trained.model.cfg.labels))
        h = self.trained.history
        return {"architecture": self.trained.architecture, "dev_macro_f1": round(dev["macro_f1"], 4),
                "dev_accuracy": round(dev["accuracy"], 4), "best_epoch": h.best_epoch,
                "train_seconds": round(h.seconds, 1), "train_samples_per_s": round(h.samples_per_s, 1),
                "rows_labelled": len(self.texts), "labeling_seconds": round(self.labeling_seconds, 1),
                "device": h.device}


def teach(spec, labels: list[str], texts: Sequence[str], soft_labels: np.ndarray, unlabeled: Sequence[str],
          dev_texts: Sequence[str], y_dev: np.ndarray, checkpoint_dir: Path | None = None, on_epoch=None,
          device: str | None = None) -> EncoderTeacher:
    """Fine-tune the spec's encoder on the label model's labels (early-stopped and calibrated on dev; its
    checkpoints are `teacher-encoder-round1.pt`), then label every train row with it."""
    no_self_training = spec.model_copy(update={"self_training": False})
    trained = train_student(no_self_training, labels, TEACHER, texts, soft_labels, [], dev_texts, y_dev,
                            checkpoint_dir, on_epoch, device, name=f"teacher-{TEACHER}")
    every_row = [*texts, *unlabeled]
    began = time.perf_counter()
    probabilities = trained.model.predict_proba(every_row)
    return EncoderTeacher(trained, every_row, probabilities.astype(np.float32), time.perf_counter() - began,
                          trained.model.predict_proba(dev_texts).argmax(axis=1))
