"""Labeling stage: the weak label matrix (prompts + labeling functions), the label model, probabilistic labels."""

import io

import dagster as dg
import pandas as pd

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.defs.common import asset_kwargs, ins, key, png_md, table_md, table_value
from fmops_pipelines.defs.resources import FMCacheResource
from fmops_pipelines.fm.exploration import anchor_ids, calibrated_prompts
from fmops_pipelines.fm.factory import fm_from_spec
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.supervision.label_matrix import (
    build_label_matrix,
    labeler_columns,
    matrix_summary,
    votes,
    votes_for,
)
from fmops_pipelines.supervision.label_models import FittedLabelModel, choose_label_model, prob_columns, training_labels
from fmops_pipelines.supervision.lfs import task_lfs
from fmops_pipelines.tracking import MlflowTracking


def _gx_result(success: bool, rows: list[dict]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=success, metadata={"expectations": table_md(pd.DataFrame(rows), 100)})


def build(spec: TaskSpec) -> list:
    k = len(spec.label_names)

    @dg.asset(name="weak_label_matrix", ins=ins(spec, "splits", "prompt_scores"),
              **asset_kwargs(spec, "labeling", {"torch", "pandas"},
                             "L[n, m]: votes of the selected prompts and the labeling functions on every row (-1 = abstain)."))
    def weak_label_matrix(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm_cache: FMCacheResource,
                          splits: pd.DataFrame, prompt_scores: pd.DataFrame) -> dg.Output:
        fm = fm_from_spec(spec.fm, fm_cache.open())
        lfs = task_lfs(spec)
        matrix = build_label_matrix(fm, calibrated_prompts(prompt_scores), lfs, splits, spec.label_names)
        stats = {**matrix_summary(votes(matrix, "train")), **fm.stats.as_dict(), "labeling_functions": len(lfs)}
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics(stats)
            mlf.log_dict({"labelers": labeler_columns(matrix)}, "labelers.json")
        return dg.Output(matrix, metadata=stats)

    @dg.asset_check(asset=key(spec, "weak_label_matrix"), name="label_matrix_expectations", blocking=True,
                    description="GX: votes are -1 or a label index; train coverage >= label_model.min_coverage.")
    def label_matrix_expectations(weak_label_matrix: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_label_matrix

        return _gx_result(*validate_label_matrix(weak_label_matrix, labeler_columns(weak_label_matrix), k,
                                                 spec.label_model.min_coverage))

    @dg.asset(name="label_model", ins=ins(spec, "splits", "weak_label_matrix", "prompt_scores"),
              **asset_kwargs(spec, "labeling", {"snorkel"},
                             "Combines the labelers' votes into probabilistic labels; kind chosen and calibrated on dev."))
    def label_model(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits: pd.DataFrame,
                    weak_label_matrix: pd.DataFrame, prompt_scores: pd.DataFrame) -> dg.Output:
        from PIL import Image

        from fmops_pipelines.specialist.selection import label_model_scorer
        from fmops_pipelines.supervision.analysis import coverage_accuracy_plot, summarize_labelers

        dev = part(splits, "dev")
        L_dev, y_dev = votes_for(weak_label_matrix, dev["id"]), label_indices(dev["label"], spec.label_names)
        student_score, student_scores = label_model_scorer(spec.name, spec.specialist, spec.label_names,
                                                           weak_label_matrix, splits, anchor_ids(prompt_scores),
                                                           dev["text"].tolist(), y_dev)
        model, dev_scores = choose_label_model(spec.label_model.kind, votes(weak_label_matrix, "train"), L_dev, y_dev,
                                               k, class_balance(dev["label"], spec.label_names),
                                               spec.label_model.epochs, spec.splits.seed,
                                               student_score if spec.label_model.select_by == "student" else None)
        summary = summarize_labelers(weak_label_matrix, splits, model, spec.label_names)
        plot = coverage_accuracy_plot(summary)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({"requested": spec.label_model.kind, "chosen": model.kind, "temperature": model.temperature})
            mlf.log_metrics({f"dev_macro_f1_{kd}": v for kd, v in dev_scores.items()})
            mlf.log_metrics({f"student_dev_{spec.specialist.objective}_{kd}": v for kd, v in student_scores.items()})
            mlf.log_table(summary, "lf_analysis.json")
            mlf.log_image(Image.open(io.BytesIO(plot)), "lf_coverage_accuracy.png")
        return dg.Output(model, metadata={"kind": model.kind, "temperature": model.temperature,
                                          "dev_macro_f1": dg.MetadataValue.json(dev_scores),
                                          "student_dev_score": dg.MetadataValue.json(student_scores),
                                          "lf_analysis": table_value(summary),
                                          "coverage_vs_accuracy": png_md(plot, "labelers")})

    @dg.asset(name="training_labels", ins=ins(spec, "weak_label_matrix", "label_model", "prompt_scores"),
              **asset_kwargs(spec, "labeling", {"pandas"},
                             "P[n, k]: probabilistic labels for the unlabeled train rows, from the label model."))
    def training_labels_asset(context: dg.AssetExecutionContext, mlflow: MlflowTracking,
                              weak_label_matrix: pd.DataFrame, label_model: FittedLabelModel,
                              prompt_scores: pd.DataFrame) -> dg.Output:
        out = training_labels(label_model, weak_label_matrix, spec.label_names, anchor_ids(prompt_scores))
        covered = out[out["covered"]]
        expected = {name: round(float(covered[f"p_{name}"].mean()), 4) for name in spec.label_names}
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics({"rows": len(out), "covered_rows": len(covered), "coverage": float(out["covered"].mean()),
                             **{f"expected_share_{name}": v for name, v in expected.items()}})
        return dg.Output(out, metadata={"rows": len(out), "covered_rows": len(covered),
                                        "coverage": float(out["covered"].mean()),
                                        "expected_class_share": dg.MetadataValue.json(expected)})

    @dg.asset_check(asset=key(spec, "training_labels"), name="training_label_expectations", blocking=True,
                    description="GX: every probability in [0, 1] and every row sums to 1.")
    def training_label_expectations(training_labels: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_training_labels

        return _gx_result(*validate_training_labels(training_labels, prob_columns(spec.label_names)))

    return [weak_label_matrix, label_matrix_expectations, label_model, training_labels_asset, training_label_expectations]
