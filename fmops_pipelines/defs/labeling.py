"""Labeling stage: the weak label matrix, the label model fit on its train votes, probabilistic labels."""


import dagster as dg
import pandas as pd

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.defs.common import asset_kwargs, ins, table_md
from fmops_pipelines.defs.resources import FMCacheResource
from fmops_pipelines.fm.embedding import build_fm
from fmops_pipelines.fm.exploration import calibrated_prompts
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.supervision.label_matrix import labeler_columns, matrix_summary, prompt_label_matrix, votes
from fmops_pipelines.supervision.label_models import FittedLabelModel, choose_label_model, training_labels
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    k = len(spec.label_names)

    @dg.asset(name="weak_label_matrix", ins=ins(spec, "splits", "prompt_scores"), **asset_kwargs(spec, "labeling", {"torch", "pandas"},
              "L[n, m]: each selected prompt's vote on every row (-1 = abstain), all splits."))
    def weak_label_matrix(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm_cache: FMCacheResource,
                          splits: pd.DataFrame, prompt_scores: pd.DataFrame) -> dg.Output:
        fm = build_fm(spec.fm.backend, spec.fm.model, fm_cache.open(), spec.fm.batch_size)
        matrix = prompt_label_matrix(fm, calibrated_prompts(prompt_scores), splits)
        stats = {**matrix_summary(votes(matrix, "train")), **fm.stats.as_dict()}
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics(stats)
            mlf.log_dict({"labelers": labeler_columns(matrix)}, "labelers.json")
        return dg.Output(matrix, metadata=stats)

    @dg.asset(name="label_model", ins=ins(spec, "splits", "weak_label_matrix"), **asset_kwargs(spec, "labeling", {"snorkel"},
              "Combines the labelers' votes without gold labels; the kind is chosen on dev macro-F1."))
    def label_model(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits: pd.DataFrame,
                    weak_label_matrix: pd.DataFrame) -> dg.Output:
        dev = part(splits, "dev")
        dev_matrix = weak_label_matrix.set_index("id").loc[dev["id"]].reset_index()
        model, dev_scores = choose_label_model(
            spec.label_model.kind, votes(weak_label_matrix, "train"), votes(dev_matrix),
            label_indices(dev["label"], spec.label_names), k, class_balance(dev["label"], spec.label_names),
            spec.label_model.epochs, spec.splits.seed)
        weights = model.labeler_weights()
        table = pd.DataFrame({"labeler": labeler_columns(weak_label_matrix),
                              "weight": weights if weights is not None else 1.0})
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({"requested": spec.label_model.kind, "chosen": model.kind, "epochs": spec.label_model.epochs})
            mlf.log_metrics({f"dev_macro_f1_{kd}": v for kd, v in dev_scores.items()})
            mlf.log_table(table, "labeler_weights.json")
        return dg.Output(model, metadata={"kind": model.kind, "dev_macro_f1": dg.MetadataValue.json(dev_scores),
                                          "weights": table_md(table)})

    @dg.asset(name="training_labels", ins=ins(spec, "weak_label_matrix", "label_model"), **asset_kwargs(spec, "labeling", {"pandas"},
              "P[n, k]: probabilistic labels for the unlabeled train rows, from the label model."))
    def training_labels_asset(context: dg.AssetExecutionContext, mlflow: MlflowTracking,
                              weak_label_matrix: pd.DataFrame, label_model: FittedLabelModel) -> dg.Output:
        out = training_labels(label_model, weak_label_matrix, spec.label_names)
        covered = out[out["covered"]]
        expected = {name: round(float(covered[f"p_{name}"].mean()), 4) for name in spec.label_names}
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics({"rows": len(out), "covered_rows": len(covered), "coverage": float(out["covered"].mean()),
                             **{f"expected_share_{name}": v for name, v in expected.items()}})
        return dg.Output(out, metadata={"rows": len(out), "covered_rows": len(covered),
                                        "coverage": float(out["covered"].mean()),
                                        "expected_class_share": dg.MetadataValue.json(expected)})

    return [weak_label_matrix, label_model, training_labels_asset]
