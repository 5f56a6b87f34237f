"""Exploration stage: every candidate prompt scored on dev; the best diverse ones become labelers."""

import dagster as dg
import pandas as pd

from fmops_pipelines.data.fm_budget import fm_rows
from fmops_pipelines.data.splits import label_indices, part
from fmops_pipelines.fm.base import precision_warning, with_fm_usage
from fmops_pipelines.fm.exploration import CALIBRATION_POOL, candidates_for, explore_prompts
from fmops_pipelines.resources import FoundationModelResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import fm_metadata, table_md, task_asset
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"torch", "sentence_transformers"},
                "Each candidate prompt (templates x verbalizers, + AMA rewrites for generative FMs) scored on dev; "
                "top diverse kept.")
    def prompt_scores(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm: FoundationModelResource,
                      splits: pd.DataFrame) -> dg.Output:
        model = fm.for_spec(spec.fm)
        if slow := precision_warning(model):
            context.log.warning(f"{spec.name}: {slow}")
        dev, train = part(splits, "dev"), part(fm_rows(splits), "train")  # calibrate within the FM's budget
        pool = train["text"].sample(min(CALIBRATION_POOL, len(train)), random_state=spec.splits.seed).tolist()
        table = explore_prompts(model, candidates_for(spec), pool, dev["text"].tolist(),
                                label_indices(dev["label"], spec.label_names), spec.label_names,
                                spec.prompts.max_labelers, spec.prompts.min_coverage,
                                few_shot=spec.prompts.few_shot and spec.fm.backend == "embedding",
                                few_shot_labeler=spec.prompts.few_shot_labeler,
                                anchor=spec.prompts.anchor)
        shown = table[["rank", "prompt_id", "template", "dev_accuracy", "dev_macro_f1", "coverage", "selected"]]
        return mlflow.record(context, spec.name, dg.Output(with_fm_usage(table, model.stats), metadata={
            **fm_metadata(model.stats), "fm_backend": model.backend, "fm_model": model.model_id,
            "fm_revision": model.revision, "candidates": len(table), "selected": int(table["selected"].sum()),
            "best_dev_macro_f1": float(table["dev_macro_f1"].iloc[0]), "prompts": table_md(shown)}))

    return [prompt_scores]
