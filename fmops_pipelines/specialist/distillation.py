"""Labels -> specialist: choose the teaching label model, build the training rows, train and select students.

The training stage's one call. Gold labels enter only through dev (teacher choice, early stopping,
calibration, architecture choice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.specialist.selection import Selection, choose_teacher, train_and_select
from fmops_pipelines.specialist.training_data import training_rows
from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates, labels_of


@dataclass
class Distilled:
    teacher: FittedLabelModel
    teacher_scores: dict[str, dict]  # each candidate label model's student dev score and interval (empty: chosen
    # on the label models' own dev scores)
    selection: Selection
    texts: list[str]  # the training texts (an input example for the registry)
    resumed_after_epoch: int = 0  # >0: a training of this step (a teacher's student included) resumed a checkpoint


def distill(spec, candidates: LabelModelCandidates, labels_frame: pd.DataFrame, splits: pd.DataFrame,
            checkpoint_dir: Path | None = None, device: str | None = None,
            on_epoch: Callable[[str, dict], None] | None = None) -> Distilled:
    """spec: a TaskSpec (its specialist section may carry per-run overrides)."""
    s, names = spec.specialist, spec.label_names
    dev = part(splits, "dev")
    dev_texts, y_dev = dev["text"].tolist(), label_indices(dev["label"], names)
    prior = class_balance(dev["label"], names) if s.match_dev_prior else None
    teacher, scores, taught = choose_teacher(s, spec.name, names, candidates, labels_frame, splits, dev_texts, y_dev,
                                             spec.label_model.select_by, device, prior, checkpoint_dir)
    texts, targets, unlabeled = training_rows(spec.name, labels_of(labels_frame, teacher.kind), splits, names, prior)
    selection = train_and_select(s, names, texts, targets, unlabeled, dev_texts, y_dev, checkpoint_dir, on_epoch,
                                 device, trained={"ngram": taught[teacher.kind]} if taught else None)
    resumed = max([c.resumed_after_epoch for c in selection.candidates] +
                  [t.resumed_after_epoch for t in taught.values()])
    return Distilled(teacher, scores, selection, texts, resumed)
