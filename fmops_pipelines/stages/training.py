"""Training stage: the distilled specialist, trained on probabilistic labels, selected on dev, logged and registered."""

import dagster as dg
import pandas as pd
from pydantic import Field

from fmops_pipelines.resources import ComputeResource, FmopsHome
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import table_md, table_value, task_asset
from fmops_pipelines.tracking import MlflowTracking


class SpecialistConfig(dg.Config):
    """Per-run overrides in the launchpad; empty values keep the task spec's and the compute resource's."""

    device: str = Field(default="", description="'cpu', 'cuda' or 'cuda:N'; empty: the compute resource's device")
    epochs: int = Field(default=0, ge=0, description="max epochs for every architecture; 0: the spec's")


def with_overrides(spec: TaskSpec, config: SpecialistConfig) -> TaskSpec:
    if not config.epochs:
        return spec
    s = spec.specialist
    student = s.model_copy(update={arch: getattr(s, arch).model_copy(update={"epochs": config.epochs})
                                   for arch in ("ngram", "ngram_char", "encoder")})
    return spec.model_copy(update={"specialist": student})


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"torch", "mlflow"}, "Students trained on the probabilistic labels of the label model that "
                                           "teaches best (cuda when present), the best on dev registered.")
    def specialist(context: dg.AssetExecutionContext, config: SpecialistConfig, mlflow: MlflowTracking,
                   compute: ComputeResource, home: FmopsHome, splits: pd.DataFrame, training_labels: pd.DataFrame,
                   label_model, prompt_scores: pd.DataFrame, gold_teacher: pd.DataFrame,
                   weak_label_matrix: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.fm.exploration import anchor_ids
        from fmops_pipelines.inference.bundle import TAG_FINGERPRINT, TAG_LABEL_MODEL
        from fmops_pipelines.inference.lineage import gold_fingerprint, labelers_fingerprint
        from fmops_pipelines.specialist.distillation import distill, reported_dev
        from fmops_pipelines.specialist.packaging import log_and_register
        from fmops_pipelines.supervision.label_matrix import anchor_columns

        run_spec, device = with_overrides(spec, config), compute.resolve(config.device)
        with mlflow.run(context, spec.name) as run:
            def on_epoch(arch: str, r: dict) -> None:
                run.log_metrics({f"{arch}_{k}": v for k, v in r.items() if k != "epoch"}, step=r["epoch"])

            out = distill(run_spec, label_model, training_labels, splits, home.checkpoints(spec.name), device,
                          teacher_labels=gold_teacher, matrix=weak_label_matrix,
                          anchors=anchor_columns(weak_label_matrix, anchor_ids(prompt_scores)), on_epoch=on_epoch)
            chosen = out.selection.chosen
            registered = log_and_register(chosen.model, spec.name, out.texts, {
                TAG_LABEL_MODEL: out.teacher.kind, "architecture": chosen.architecture, "taught_by": chosen.taught_by,
                "fit": chosen.fit, "dagster_run_id": context.run_id,
                "labelers": ",".join(prompt_scores.loc[prompt_scores["selected"], "prompt_id"]),
                TAG_FINGERPRINT: labelers_fingerprint(prompt_scores, spec, splits), "gold_labels": gold_fingerprint(splits)})
            if not out.selection.met_min_throughput:
                context.log.warning(f"{spec.name}: no architecture reached min_throughput={spec.specialist.min_throughput}"
                                    f" texts/s; registered the fastest ({chosen.architecture})")
            value = {**registered, "architecture": chosen.architecture, "taught_by": chosen.taught_by, "fit": chosen.fit,
                     "label_model": out.teacher.kind, "gold_labels": gold_fingerprint(splits),
                     "anchor_rows": (out.anchor_rows or {}).get("anchor_rows", "left_out"),
                     "best_epoch": chosen.history.best_epoch, **reported_dev(chosen),
                     "device": chosen.history.device, "train_rows": len(out.texts),
                     "pseudo_labeled": chosen.self_training.pseudo_labeled,
                     "self_training_kept": chosen.self_training.kept_second_round}
            return run.record(dg.Output(value, metadata={
                **value, "label_model_students_dev_read_gold": out.dev_reads_gold,
                "texts_per_s": round(chosen.texts_per_s, 1), "train_seconds": round(chosen.history.seconds, 1),
                "resumed_after_epoch": out.resumed_after_epoch,
                "samples_per_s": round(chosen.history.samples_per_s, 1),
                "label_model_student_dev": dg.MetadataValue.json(out.teacher_scores),
                **({"anchor_rows": dg.MetadataValue.json(out.anchor_rows)} if out.anchor_rows else {}),
                **({"encoder_teacher": dg.MetadataValue.json(out.encoder_teacher)} if out.encoder_teacher else {}),
                **({"gold_rows": dg.MetadataValue.json(out.gold_rows)} if out.gold_rows else {}),
                **({"sampled": dg.MetadataValue.json(out.sampled)} if out.sampled else {}),
                "candidates": table_value(pd.DataFrame(out.selection.table())),
                "curve": table_md(pd.DataFrame(chosen.history.epochs), 50)}), params=run_spec.specialist.model_dump())

    return [specialist]
