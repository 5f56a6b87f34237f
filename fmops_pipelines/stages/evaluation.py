"""Evaluation stage: the specialist on held-out test beside its baselines and the current champion; every
spec gate is a blocking check; a self-contained HTML report per evaluation; metrics linked in MLflow to
the registered model version they judge.
"""

import json

import dagster as dg
import pandas as pd

from fmops_pipelines import paths
from fmops_pipelines.errors import StateError
from fmops_pipelines.resources import FmopsHome, FoundationModelResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import key, task_asset
from fmops_pipelines.tracking import MlflowTracking


def gate_check_specs(spec: TaskSpec) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(gate.check_name, asset=key(spec, "evaluation"), blocking=True,
                              description=f"gate: {gate.metric}{f' ({gate.slice})' if gate.slice else ''} "
                                          f"{'>=' if gate.min is not None else '<='} {gate.threshold}")
            for gate in spec.gates]


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"mlflow", "html"}, "Specialist vs best prompt, label model and current champion on held-out "
                                          "test; gates; HTML report.", check_specs=gate_check_specs(spec))
    def evaluation(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm: FoundationModelResource,
                   home: FmopsHome, splits: pd.DataFrame, prompt_scores: pd.DataFrame,
                   weak_label_matrix: pd.DataFrame, label_model, specialist: dict, training_labels: pd.DataFrame,
                   gold_teacher: pd.DataFrame):
        from fmops_pipelines.evaluation.evaluate import Taught
        from fmops_pipelines.evaluation.verdict import assess
        from fmops_pipelines.inference.bundle import TAG_FM_RATE, TAG_REFERENCE
        from fmops_pipelines.inference.ledger import task_costs
        from fmops_pipelines.specialist.packaging import champion_version, load_specialist, tag_version

        version, teacher = specialist["version"], getattr(label_model, "models", {}).get(specialist.get("label_model"))
        if teacher is None:
            raise StateError(f"{spec.name}: the stored specialist and label_model come from different fmops versions; "
                             f"run `fmops run {spec.name}` again")
        with mlflow.active():
            model, current = load_specialist(spec.name, version), champion_version(spec.name)
            champion = (current, load_specialist(spec.name, current)) if current not in (None, version) else None
        stem = f"evaluation-v{version}-{context.run_id[:8]}"
        report = home.reports(spec.name) / f"{stem}.html"
        v = assess(spec, model, {"name": specialist["name"], "version": version}, champion, fm.for_spec(spec.fm),
                   splits, prompt_scores, weak_label_matrix, label_model.best_by_dev(), report,
                   batch_costs=task_costs(paths.predictions_dir(spec.name)), teacher=teacher,
                   taught=Taught(specialist.get("taught_by", "label_model"), training_labels, gold_teacher))
        s = v.summary
        with mlflow.active():  # batch inference reads these from the version it serves: drift and cost baselines
            tag_version(spec.name, version, {TAG_REFERENCE: json.dumps(v.details["reference"]),
                                             TAG_FM_RATE: str(s["throughput"]["fm_texts_per_s"])})
        yield mlflow.record(context, spec.name, dg.Output(s, metadata={
            "test_accuracy": s["test"]["accuracy"], "test_macro_f1": s["test"]["macro_f1"],
            "ece": v.details["ece"], "passed": s["passed"], "model_version": version,
            **{k: (dg.MetadataValue.json(x) if isinstance(x, dict) else x) for k, x in s["throughput"].items()},
            **{f"gate_{g['name']}": g["value"] for g in s["gates"]},
            "champion_compared": str(v.details["champion"]["version"]),
            "report": dg.MetadataValue.url(home.report_url(report)), "report_file": dg.MetadataValue.path(str(report)),
            "batch_inference_cost": dg.MetadataValue.json(v.details["batch_inference"]),
            "confusion_matrix": home.publish_plot(spec.name, stem, "confusion_matrix", v.plots["confusion"],
                                                  "confusion matrix"),
            "reliability": home.publish_plot(spec.name, stem, "reliability", v.plots["reliability"],
                                             "reliability diagram"),
            "plots": dg.MetadataValue.path(str(home.reports(spec.name) / stem)),
            **({"where_the_loss_happened": dg.MetadataValue.json(v.details["where_the_loss_happened"])}
               if v.details.get("where_the_loss_happened") else {}),
            "summary": dg.MetadataValue.json(s), "details": dg.MetadataValue.json(v.details)}),
            model_id=specialist.get("model_id"))  # the metrics show on the judged model's page in MLflow
        for gate in s["gates"]:
            yield dg.AssetCheckResult(check_name=gate["name"], passed=gate["passed"], metadata={
                "value": gate["value"], "threshold": gate["threshold"],
                "verdict": "passed" if gate["passed"] else "failed"})

    return [evaluation]
