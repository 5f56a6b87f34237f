"""The evaluation stage's one call: measure the specialist on test beside its baselines and the champion,
apply the spec's gates, and write the HTML report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fmops_pipelines.evaluation.evaluate import Serving, Taught, evaluate
from fmops_pipelines.evaluation.gates import evaluate_gates
from fmops_pipelines.evaluation.report import write_report
from fmops_pipelines.evaluation.summary import build_summary
from fmops_pipelines.fm.base import FoundationModel, fm_usage
from fmops_pipelines.inference.tuning import Overrides
from fmops_pipelines.specialist.student import Student
from fmops_pipelines.supervision.analysis import summarize_labelers
from fmops_pipelines.supervision.label_models import FittedLabelModel


@dataclass
class Verdict:
    summary: dict  # the evaluation JSON of the CLI contract
    details: dict  # confusion, calibration, slices, label quality, champion comparison
    plots: dict[str, bytes]  # PNGs of the report, for the asset page


def assess(spec, model: Student, model_ref: dict, champion: tuple[str, Student] | None, fm: FoundationModel,
           splits: pd.DataFrame, prompt_scores: pd.DataFrame, matrix: pd.DataFrame, label_model: FittedLabelModel,
           report_path: Path, batch_costs: dict | None = None, teacher: FittedLabelModel | None = None,
           taught: Taught | None = None) -> Verdict:
    """spec: the TaskSpec; model_ref: {"name", "version"} of the registered specialist; label_model: the labeling
    stage's choice, teacher: the label model whose labels the specialist learned (None: the same); batch_costs:
    the task's batch inference so far (inference.ledger.task_costs), shown in the report; taught: what the
    specialist learned from, for the gold teacher's baseline and the diagnosis of a loss against its teacher."""
    fixed = Overrides(spec.inference.batch_size, spec.inference.workers, spec.inference.threads)
    measured = evaluate(model, fm, splits, prompt_scores, matrix, label_model, spec.label_names, spec.slices,
                        champion, teacher, Serving(spec.name, str(model_ref["version"]), fixed), taught)
    # FM cost of labeling, carried by the exploration, labeling and gold teacher assets themselves
    frames = [prompt_scores, matrix, *([taught.teacher_labels] if taught and taught.teacher_labels is not None else [])]
    measured["labeling"] = {**fm_usage(*frames), "labelers": measured["labelers"]}
    summary = build_summary(spec.name, {**model_ref, "alias": None}, measured["test"], measured["baselines"],
                            measured["throughput"], measured["labeling"], evaluate_gates(spec.gates, measured),
                            measured["details"].get("where_the_loss_happened"))
    measured["details"]["batch_inference"] = batch_costs
    measured["details"]["fm_abstains"] = measured["labeling"]["fm_abstains"]  # rows the FM left unanswered, by reason
    plots = write_report(report_path, summary, measured["details"], prompt_scores,
                         summarize_labelers(matrix, splits, label_model, spec.label_names))
    return Verdict(summary, measured["details"], plots)
