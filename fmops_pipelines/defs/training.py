"""Training stage: the distilled specialist, trained on probabilistic labels, logged and registered."""


import dagster as dg
import pandas as pd

from fmops_pipelines import paths
from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.defs.common import asset_kwargs, ins, table_md
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @dg.asset(name="specialist", ins=ins(spec, "splits", "training_labels", "label_model", "prompt_scores"), **asset_kwargs(spec, "training", {"torch", "mlflow"},
              "Fast n-gram student trained on the probabilistic labels (cuda when present); a registered version."))
    def specialist(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits: pd.DataFrame,
                   training_labels: pd.DataFrame, label_model, prompt_scores: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.specialist.ngram import NgramConfig, TrainConfig
        from fmops_pipelines.specialist.self_training import self_train
        from fmops_pipelines.specialist.training_data import training_rows
        from fmops_pipelines.specialist.packaging import log_and_register

        s = spec.specialist
        cfg = NgramConfig(labels=spec.label_names, word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams,
                          hash_bits=s.hash_bits, embed_dim=s.embed_dim, dropout=s.dropout)
        train_cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                                weight_decay=s.weight_decay, patience=s.patience, seed=s.seed)
        dev = part(splits, "dev")
        prior = class_balance(dev["label"], spec.label_names) if s.match_dev_prior else None
        texts, targets, unlabeled = training_rows(spec.name, training_labels, splits, spec.label_names, prior)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({**s.model_dump(), "train_rows": len(texts), "label_model": label_model.kind})
            model, history, st = self_train(
                cfg, train_cfg, texts, targets, unlabeled if s.self_training else [],
                dev["text"].tolist(), label_indices(dev["label"], spec.label_names), s.self_training_threshold,
                on_epoch=lambda r: mlf.log_metrics({k: v for k, v in r.items() if k != "epoch"}, step=r["epoch"]),
                checkpoint=paths.fmops_home() / "checkpoints" / spec.name / "specialist.pt")
            mlf.log_metrics({"pseudo_labeled": st.pseudo_labeled, "self_training_kept": int(st.kept_second_round)})
            mlf.log_metrics({"best_epoch": history.best_epoch, "best_dev_macro_f1": history.best_dev_macro_f1,
                             "train_seconds": history.seconds, "train_samples_per_s": history.samples_per_s})
            labelers = ",".join(prompt_scores.loc[prompt_scores["selected"], "prompt_id"])
            registered = log_and_register(model, spec.name, texts,
                                          {"label_model": label_model.kind, "labelers": labelers,
                                           "dagster_run_id": context.run_id})
        value = {**registered, "best_epoch": history.best_epoch, "best_dev_macro_f1": history.best_dev_macro_f1,
                 "device": history.device, "train_rows": len(texts), "pseudo_labeled": st.pseudo_labeled,
                 "self_training_kept": st.kept_second_round}
        return dg.Output(value, metadata={**value, "curve": table_md(pd.DataFrame(history.epochs), 50),
                                          "samples_per_s": round(history.samples_per_s, 1)})

    return [specialist]
