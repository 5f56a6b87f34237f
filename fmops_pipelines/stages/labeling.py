"""Labeling stage: the weak label matrix (prompts + labeling functions), the label models, probabilistic labels.

No student is trained here: when the spec selects the label model by the student it teaches, every
candidate's labels go downstream and the training stage makes that choice.
"""

import dagster as dg
import pandas as pd

from fmops_pipelines.data.fm_budget import fm_rows
from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.fm.base import with_fm_usage
from fmops_pipelines.fm.exploration import anchor_ids, calibrated_prompts
from fmops_pipelines.resources import ComputeResource, FmopsHome, FoundationModelResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import fm_metadata, gx_result, key, table_value, task_asset
from fmops_pipelines.supervision.label_matrix import (
    anchor_columns,
    build_label_matrix,
    labeler_columns,
    matrix_summary,
    votes,
    votes_for,
    with_gold_teacher,
)
from fmops_pipelines.supervision.label_models import (
    LabelModelCandidates,
    candidate_training_labels,
    prob_columns,
)
from fmops_pipelines.supervision.lfs import task_lfs
from fmops_pipelines.tracking import MlflowTracking


def fm_rules_metadata(matrix: pd.DataFrame) -> dict:
    """Kept phrases per label and the table of every mined candidate with its evidence."""
    from fmops_pipelines.supervision.mined_lfs import kept_rules, rules_by_label

    records = matrix.attrs.get("fm_rules")
    if records is None:
        return {}
    table = pd.DataFrame(records)
    kept = rules_by_label(kept_rules(table))
    phrases = {label: [r.keyword for r in group] for label, group in kept.items()}
    return {"fm_rules_kept": dg.MetadataValue.json(phrases),
            "fm_rules_candidates": len(table),
            "fm_rules": table_value(table.head(200)) if len(table) else dg.MetadataValue.text("no candidates")}


def build(spec: TaskSpec) -> list:
    k = len(spec.label_names)

    @task_asset(spec, {"torch", "pandas"},
                "L[n, m]: votes of the selected prompts, the labeling functions and the gold teacher on every row "
                "(-1 = abstain).")
    def weak_label_matrix(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm: FoundationModelResource,
                          splits: pd.DataFrame, prompt_scores: pd.DataFrame, gold_teacher: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.supervision.mined_lfs import MiningConfig

        model, lfs = fm.for_spec(spec.fm), task_lfs(spec)
        matrix = build_label_matrix(model, calibrated_prompts(prompt_scores), lfs, splits, spec.label_names,
                                    MiningConfig.from_spec(spec) if spec.fm_rules.enabled else None)
        if spec.gold_teacher.labeler:
            matrix = with_gold_teacher(matrix, gold_teacher, spec.label_names)
        return mlflow.record(context, spec.name, dg.Output(with_fm_usage(matrix, model.stats), metadata={
            **matrix_summary(votes(matrix, "train")), **fm_metadata(model.stats), "labeling_functions": len(lfs),
            "labelers": dg.MetadataValue.json(labeler_columns(matrix)), **fm_rules_metadata(matrix)}))

    @dg.asset_check(asset=key(spec, "weak_label_matrix"), name="label_matrix_expectations", blocking=True,
                    description="GX: votes are -1 or a label index; train coverage >= label_model.min_coverage.")
    def label_matrix_expectations(weak_label_matrix: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_label_matrix

        return gx_result(*validate_label_matrix(weak_label_matrix, labeler_columns(weak_label_matrix), k,
                                                spec.label_model.min_coverage))

    @task_asset(spec, {"snorkel"}, "Label models fitted on the votes and calibrated on dev (every kind for 'auto'), "
                                   "each with its dev macro-F1.")
    def label_model(context: dg.AssetExecutionContext, mlflow: MlflowTracking, home: FmopsHome, splits: pd.DataFrame,
                    weak_label_matrix: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.supervision.analysis import coverage_accuracy_plot, summarize_labelers
        from fmops_pipelines.supervision.label_model_memo import fit_candidates_memoised

        dev = part(splits, "dev")
        lm = spec.label_model
        candidates, reused = fit_candidates_memoised(
            home.checkpoints(spec.name), lm.kind, votes(weak_label_matrix, "train"),
            votes_for(weak_label_matrix, dev["id"]), label_indices(dev["label"], spec.label_names), k,
            class_balance(dev["label"], spec.label_names), lm.epochs, spec.splits.seed)
        best = candidates.best_by_dev()
        summary = summarize_labelers(weak_label_matrix, splits, best, spec.label_names)
        return mlflow.record(context, spec.name, dg.Output(candidates, metadata={
            "kinds": ", ".join(candidates.kinds), "best_by_dev": best.kind, "select_by": lm.select_by,
            "fit": "reused (the same votes and settings were fitted before)" if reused else "fitted",
            "dev_macro_f1": dg.MetadataValue.json(candidates.dev_scores),
            "temperature": dg.MetadataValue.json({kd: m.temperature for kd, m in candidates.models.items()}),
            "lf_analysis": table_value(summary),
            "coverage_vs_accuracy": home.publish_plot(spec.name, f"label-model-{context.run_id[:8]}",
                                                      "coverage_vs_accuracy", coverage_accuracy_plot(summary),
                                                      "labelers: dev accuracy vs train coverage")}))

    @task_asset(spec, {"scikitlearn"}, "The gold teacher: a classifier fitted on the gold rows (on the FM's "
                                       "embeddings, its token vectors and TF-IDF, or some of them: chosen out of "
                                       "fold, the richest within noise), labelling every row the FM may "
                                       "label (all, or fm.budget's sample); gold rows "
                                       "out of fold, the pool also once per fold.")
    def gold_teacher(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm: FoundationModelResource,
                     compute: ComputeResource, splits: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.data.splits import thin_gold_labels
        from fmops_pipelines.supervision.gold_teacher import contrastive_encoder, empty_labels, teach_splits

        model = fm.for_spec(spec.fm)
        encoder, why = contrastive_encoder(spec, compute.resolve())
        if why:
            context.log.info(f"{spec.name}: no SetFit gold teacher: {why}")
        teacher = teach_splits(model, fm_rows(splits), spec.label_names, spec.splits.seed, encoder,
                               spec.gold_teacher.contrastive_iterations)
        if teacher is None:
            thin = ", ".join(f"{n} row{'' if n == 1 else 's'} labelled {label}"
                             for label, n in thin_gold_labels(splits, spec.label_names).items())
            context.log.warning(f"{spec.name}: no gold teacher: it is cross-fitted on gold rows, at least 2 of each "
                                f"label, and the gold split has {thin} (label more in the data file, or with "
                                f"`fmops review {spec.name}`)")
            return mlflow.record(context, spec.name, dg.Output(empty_labels(spec.label_names),
                                                               metadata={"kind": "none"}))
        return mlflow.record(context, spec.name, dg.Output(with_fm_usage(teacher.labels, model.stats), metadata={
            "kind": teacher.kind, "out_of_fold_macro_f1": dg.MetadataValue.json(teacher.scores),
            "kind_choice": dg.MetadataValue.json(teacher.choice),
            "gold_rows": int((splits["split"] == "dev").sum()), "folds": int(teacher.labels["fold"].max() + 1),
            "self_training": dg.MetadataValue.json(teacher.self_training),
            "params": dg.MetadataValue.json(teacher.params), "fit_seconds": round(teacher.seconds, 2),
            "seconds_by_kind": dg.MetadataValue.json(teacher.seconds_by_kind),
            "contrastive": encoder is not None,
            **fm_metadata(model.stats)}))

    @task_asset(spec, {"pandas"}, "P[n, k]: probabilistic labels for the unlabeled train rows from each label model "
                                  "the training stage chooses among (column label_model).")
    def training_labels(context: dg.AssetExecutionContext, mlflow: MlflowTracking,
                        weak_label_matrix: pd.DataFrame, label_model: LabelModelCandidates,
                        prompt_scores: pd.DataFrame) -> dg.Output:
        kinds = label_model.kinds if spec.label_model.select_by == "student" else [label_model.best_by_dev().kind]
        out = candidate_training_labels(label_model, kinds, weak_label_matrix, spec.label_names,
                                        anchor_columns(weak_label_matrix, anchor_ids(prompt_scores)))
        first = out[(out["label_model"] == kinds[0]) & out["covered"]]
        return mlflow.record(context, spec.name, dg.Output(out, metadata={
            "rows": int((out["label_model"] == kinds[0]).sum()), "covered_rows": len(first),
            "coverage": float(out["covered"].mean()), "label_models": ", ".join(kinds),
            "expected_class_share": dg.MetadataValue.json({
                kd: {n: round(float(out.loc[(out["label_model"] == kd) & out["covered"], f"p_{n}"].mean()), 4)
                     for n in spec.label_names} for kd in kinds})}))

    @dg.asset_check(asset=key(spec, "training_labels"), name="training_label_expectations", blocking=True,
                    description="GX: every probability in [0, 1] and every row sums to 1.")
    def training_label_expectations(training_labels: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_training_labels

        return gx_result(*validate_training_labels(training_labels, prob_columns(spec.label_names)))

    return [weak_label_matrix, label_matrix_expectations, label_model, gold_teacher, training_labels,
            training_label_expectations]
