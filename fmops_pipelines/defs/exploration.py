"""Exploration stage: every candidate prompt scored on dev; the best diverse ones become labelers."""


import dagster as dg
import pandas as pd

from fmops_pipelines.data.splits import label_indices, part
from fmops_pipelines.defs.common import asset_kwargs, ins, table_md
from fmops_pipelines.defs.resources import FMCacheResource
from fmops_pipelines.fm.exploration import candidates_for, explore_prompts
from fmops_pipelines.fm.factory import fm_from_spec
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking

POOL_SIZE = 2000  # unlabeled rows used for contextual calibration


def build(spec: TaskSpec) -> list:
    @dg.asset(name="prompt_scores", ins=ins(spec, "splits"), **asset_kwargs(spec, "exploration", {"torch", "sentence_transformers"},
              "Each candidate prompt (templates x verbalizers, + AMA rewrites for generative FMs) scored on dev; top diverse kept."))
    def prompt_scores(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm_cache: FMCacheResource,
                      splits: pd.DataFrame) -> dg.Output:
        fm = fm_from_spec(spec.fm, fm_cache.open())
        dev, train = part(splits, "dev"), part(splits, "train")
        pool = train["text"].sample(min(POOL_SIZE, len(train)), random_state=spec.splits.seed).tolist()
        candidates = candidates_for(spec)
        table = explore_prompts(fm, candidates, pool, dev["text"].tolist(), label_indices(dev["label"], spec.label_names),
                                spec.label_names, spec.prompts.max_labelers, spec.prompts.min_coverage,
                                few_shot=spec.prompts.few_shot and spec.fm.backend == "embedding",
                                anchor=spec.prompts.anchor)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({"fm_backend": fm.backend, "fm_model": fm.model_id, "fm_revision": fm.revision,
                            "candidates": len(table), "selected": int(table["selected"].sum())})
            mlf.log_metrics({**fm.stats.as_dict(), "best_dev_macro_f1": float(table["dev_macro_f1"].iloc[0])})
            mlf.log_table(table.drop(columns=["center"]), "prompt_scores.json")
        shown = table[["rank", "prompt_id", "template", "dev_accuracy", "dev_macro_f1", "coverage", "selected"]]
        return dg.Output(table, metadata={**fm.stats.as_dict(), "candidates": len(table),
                                          "selected": int(table["selected"].sum()), "prompts": table_md(shown)})

    return [prompt_scores]
