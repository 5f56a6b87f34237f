"""Evaluation stage: the specialist on held-out test beside its baselines; each spec gate a blocking check."""


import dagster as dg
import pandas as pd

from fmops_pipelines.defs.common import asset_kwargs, ins, key, latest_metadata
from fmops_pipelines.defs.resources import FMCacheResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking


def gate_check_specs(spec: TaskSpec) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(gate.check_name, asset=key(spec, "evaluation"), blocking=True,
                              description=f"gate: {gate.metric} {'>=' if gate.min is not None else '<='} {gate.threshold}")
            for gate in spec.gates]


def build(spec: TaskSpec) -> list:
    @dg.asset(name="evaluation", ins=ins(spec, "splits", "prompt_scores", "weak_label_matrix", "label_model", "specialist"), check_specs=gate_check_specs(spec),
              **asset_kwargs(spec, "evaluation", {"mlflow"},
                             "Specialist vs best prompt, majority vote and label model on the held-out test split."))
    def evaluation(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm_cache: FMCacheResource,
                   splits: pd.DataFrame, prompt_scores: pd.DataFrame, weak_label_matrix: pd.DataFrame,
                   label_model, specialist: dict):
        from fmops_pipelines.evaluation.evaluate import evaluate
        from fmops_pipelines.evaluation.gates import evaluate_gates
        from fmops_pipelines.evaluation.summary import build_summary
        from fmops_pipelines.fm.embedding import build_fm
        from fmops_pipelines.specialist.packaging import load_specialist

        mlflow.configure()
        model = load_specialist(spec.name, specialist["version"])
        fm = build_fm(spec.fm.backend, spec.fm.model, fm_cache.open(), spec.fm.batch_size)
        measured = evaluate(model, fm, splits, prompt_scores, weak_label_matrix, label_model, spec.label_names)
        labeling = {"fm_calls": 0, "fm_cache_hits": 0, "labelers": measured["labelers"]}
        for upstream in ("prompt_scores", "weak_label_matrix"):
            meta = latest_metadata(context, key(spec, upstream))
            labeling["fm_calls"] += int(meta.get("fm_calls", 0))
            labeling["fm_cache_hits"] += int(meta.get("fm_cache_hits", 0))
        partial = {**measured, "labeling": labeling}
        summary = build_summary(spec.name, {"name": specialist["name"], "version": specialist["version"], "alias": None},
                                measured["test"], measured["baselines"], measured["throughput"], labeling,
                                evaluate_gates(spec.gates, partial))
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics({"test_accuracy": summary["test"]["accuracy"], "test_macro_f1": summary["test"]["macro_f1"],
                             **summary["throughput"], **{f"gate_{g['name']}": g["value"] for g in summary["gates"]}})
            mlf.log_dict(summary, "evaluation.json")
        yield dg.Output(summary, metadata={"test_accuracy": summary["test"]["accuracy"],
                                           "test_macro_f1": summary["test"]["macro_f1"], "passed": summary["passed"],
                                           "model_version": specialist["version"],
                                           "summary": dg.MetadataValue.json(summary)})
        for gate in summary["gates"]:
            yield dg.AssetCheckResult(check_name=gate["name"], passed=gate["passed"],
                                      metadata={"value": gate["value"], "threshold": gate["threshold"]})

    return [evaluation]
