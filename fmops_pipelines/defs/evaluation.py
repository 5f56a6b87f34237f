"""Evaluation stage: the specialist on held-out test beside its baselines and the current champion; every
spec gate is a blocking check; a self-contained HTML report per evaluation.
"""

import dagster as dg
import pandas as pd

from fmops_pipelines import paths
from fmops_pipelines.defs.common import asset_kwargs, ins, key, latest_metadata, png_md
from fmops_pipelines.defs.resources import FMCacheResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking


def gate_check_specs(spec: TaskSpec) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(gate.check_name, asset=key(spec, "evaluation"), blocking=True,
                              description=f"gate: {gate.metric}{f' ({gate.slice})' if gate.slice else ''} "
                                          f"{'>=' if gate.min is not None else '<='} {gate.threshold}")
            for gate in spec.gates]


def _labeling_stats(context: dg.AssetExecutionContext, spec: TaskSpec, labelers: int) -> dict:
    """FM calls and cache hits of the latest labeling materializations (read from their metadata)."""
    stats = {"fm_calls": 0, "fm_cache_hits": 0, "labelers": labelers}
    for upstream in ("prompt_scores", "weak_label_matrix"):
        meta = latest_metadata(context, key(spec, upstream))
        stats["fm_calls"] += int(meta.get("fm_calls", 0))
        stats["fm_cache_hits"] += int(meta.get("fm_cache_hits", 0))
    return stats


def build(spec: TaskSpec) -> list:
    @dg.asset(name="evaluation", ins=ins(spec, "splits", "prompt_scores", "weak_label_matrix", "label_model", "specialist"),
              check_specs=gate_check_specs(spec), **asset_kwargs(spec, "evaluation", {"mlflow", "html"},
              "Specialist vs best prompt, label model and current champion on held-out test; gates; HTML report."))
    def evaluation(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm_cache: FMCacheResource,
                   splits: pd.DataFrame, prompt_scores: pd.DataFrame, weak_label_matrix: pd.DataFrame,
                   label_model, specialist: dict):
        from fmops_pipelines.evaluation.evaluate import evaluate
        from fmops_pipelines.evaluation.gates import evaluate_gates
        from fmops_pipelines.evaluation.report import write_report
        from fmops_pipelines.evaluation.summary import build_summary
        from fmops_pipelines.fm.factory import fm_from_spec
        from fmops_pipelines.specialist.packaging import champion_version, load_specialist
        from fmops_pipelines.supervision.analysis import summarize_labelers

        mlflow.configure()
        model, version = load_specialist(spec.name, specialist["version"]), specialist["version"]
        current = champion_version(spec.name)
        champion = (current, load_specialist(spec.name, current)) if current not in (None, version) else None
        fm = fm_from_spec(spec.fm, fm_cache.open())
        measured = evaluate(model, fm, splits, prompt_scores, weak_label_matrix, label_model, spec.label_names,
                            spec.slices, champion)
        measured["labeling"] = _labeling_stats(context, spec, measured["labelers"])
        summary = build_summary(spec.name, {"name": specialist["name"], "version": version, "alias": None},
                                measured["test"], measured["baselines"], measured["throughput"], measured["labeling"],
                                evaluate_gates(spec.gates, measured))
        details = measured["details"]
        report = paths.fmops_home() / "reports" / spec.name / f"evaluation-v{version}-{context.run_id[:8]}.html"
        plots = write_report(report, summary, details, prompt_scores,
                             summarize_labelers(weak_label_matrix, splits, label_model, spec.label_names))
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_metrics({"test_accuracy": summary["test"]["accuracy"], "test_macro_f1": summary["test"]["macro_f1"],
                             "ece": details["ece"], **summary["throughput"],
                             **{f"gate_{g['name']}": g["value"] for g in summary["gates"]}})
            mlf.log_dict(summary, "evaluation.json")
            mlf.log_dict(details, "details.json")
            mlf.log_artifact(str(report), "report")
        yield dg.Output(summary, metadata={
            "test_accuracy": summary["test"]["accuracy"], "test_macro_f1": summary["test"]["macro_f1"],
            "ece": details["ece"], "passed": summary["passed"], "model_version": version,
            "champion_compared": str(details["champion"]["version"]), "report": dg.MetadataValue.path(str(report)),
            "confusion_matrix": png_md(plots["confusion"], "confusion matrix"),
            "reliability": png_md(plots["reliability"], "reliability diagram"),
            "summary": dg.MetadataValue.json(summary)})
        for gate in summary["gates"]:
            yield dg.AssetCheckResult(check_name=gate["name"], passed=gate["passed"], metadata={
                "value": gate["value"], "threshold": gate["threshold"],
                "verdict": "passed" if gate["passed"] else "failed"})

    return [evaluation]
