"""Training stage: the distilled specialist, trained on probabilistic labels, selected on dev, logged and registered."""


import dagster as dg
import pandas as pd

from fmops_pipelines import paths
from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.defs.common import asset_kwargs, ins, table_md
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @dg.asset(name="specialist", ins=ins(spec, "splits", "training_labels", "label_model", "prompt_scores"), **asset_kwargs(spec, "training", {"torch", "mlflow"},
              "Students trained on the probabilistic labels (cuda when present), the best on dev registered."))
    def specialist(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits: pd.DataFrame,
                   training_labels: pd.DataFrame, label_model, prompt_scores: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.specialist.packaging import log_and_register
        from fmops_pipelines.specialist.selection import train_and_select
        from fmops_pipelines.specialist.training_data import training_rows

        s = spec.specialist
        dev = part(splits, "dev")
        prior = class_balance(dev["label"], spec.label_names) if s.match_dev_prior else None
        texts, targets, unlabeled = training_rows(spec.name, training_labels, splits, spec.label_names, prior)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({**s.model_dump(), "train_rows": len(texts), "label_model": label_model.kind})
            selection = train_and_select(
                s, spec.label_names, texts, targets, unlabeled, dev["text"].tolist(),
                label_indices(dev["label"], spec.label_names), paths.fmops_home() / "checkpoints" / spec.name,
                on_epoch=lambda arch, r: mlf.log_metrics({f"{arch}_{k}": v for k, v in r.items() if k != "epoch"},
                                                         step=r["epoch"]))
            chosen, table = selection.chosen, pd.DataFrame(selection.table())
            mlf.log_table(table, "candidates.json")
            mlf.log_metrics({"best_epoch": chosen.history.best_epoch, "dev_macro_f1": chosen.dev["macro_f1"],
                             "dev_accuracy": chosen.dev["accuracy"], "train_seconds": chosen.history.seconds,
                             "train_samples_per_s": chosen.history.samples_per_s, "texts_per_s": chosen.texts_per_s,
                             "pseudo_labeled": chosen.self_training.pseudo_labeled,
                             "self_training_kept": int(chosen.self_training.kept_second_round)})
            labelers = ",".join(prompt_scores.loc[prompt_scores["selected"], "prompt_id"])
            registered = log_and_register(chosen.model, spec.name, texts,
                                          {"label_model": label_model.kind, "labelers": labelers,
                                           "architecture": chosen.architecture, "dagster_run_id": context.run_id})
        if not selection.met_min_throughput:
            context.log.warning(f"{spec.name}: no architecture reached min_throughput={s.min_throughput} texts/s; "
                                f"registered the fastest ({chosen.architecture}, {chosen.texts_per_s:,.0f} texts/s)")
        value = {**registered, "architecture": chosen.architecture, "best_epoch": chosen.history.best_epoch,
                 "dev_macro_f1": chosen.dev["macro_f1"], "device": chosen.history.device, "train_rows": len(texts),
                 "pseudo_labeled": chosen.self_training.pseudo_labeled,
                 "self_training_kept": chosen.self_training.kept_second_round}
        return dg.Output(value, metadata={**value, "candidates": table_md(table, 10),
                                          "curve": table_md(pd.DataFrame(chosen.history.epochs), 50),
                                          "samples_per_s": round(chosen.history.samples_per_s, 1)})

    return [specialist]
