"""Data stage: the dataset (with its GX suite as a blocking check) and its splits."""

import dagster as dg
import pandas as pd

from fmops_pipelines.data.fm_budget import asked
from fmops_pipelines.data.readers import DECLARED_SPLITS, declared_split_values, load_dataset
from fmops_pipelines.data.splits import split_summary, task_splits
from fmops_pipelines.review.store import GoldStore
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import gx_result, key, table_md, task_asset
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"pandas"}, "Raw labelled text from the task's dataset source, labels mapped to the spec's names.")
    def dataset(context: dg.AssetExecutionContext, mlflow: MlflowTracking) -> dg.Output:
        df = load_dataset(spec)
        counts = {str(k): int(v) for k, v in df["label"].value_counts(dropna=False).items()}
        return mlflow.record(context, spec.name, dg.Output(df, metadata={
            "rows": len(df), "source": spec.dataset.registry or str(spec.dataset.path),
            "label_counts": dg.MetadataValue.json(counts), "preview": table_md(df[["id", "text", "label"]], 5)}))

    @dg.asset_check(asset=key(spec, "dataset"), name="dataset_expectations", blocking=True,
                    description="Great Expectations: unique non-null ids, non-empty text, labels in the declared set.")
    def dataset_expectations(dataset: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_dataset

        return gx_result(*validate_dataset(dataset, spec.label_names))

    @task_asset(spec, {"pandas"}, "Gold (split dev: every labelled row outside test, or splits.dev_size of them, plus "
                                  "every row a person labelled in a review round), "
                                  "held-out gold test (as the dataset declares it, or drawn at random), and the "
                                  "unlabelled pool (split train); identical texts share a split.")
    def splits(context: dg.AssetExecutionContext, mlflow: MlflowTracking, dataset: pd.DataFrame) -> dg.Output:
        store = GoldStore()
        out, extra = task_splits(spec, dataset, store.reviewed(spec.name), store.picked(spec.name))
        if not spec.dataset.declared_split_column and "split" in dataset.columns and \
                declared_split_values(dataset["split"]).isin(DECLARED_SPLITS).all():
            context.log.warning(f"{spec.name}: the dataset has a 'split' column that was not used; set "
                                "dataset.split_column: split in task.yaml to keep its test rows as test")
        summary = split_summary(out)
        if spec.fm.budget is not None:
            extra["fm_labelled_pool_rows"] = int(asked(out)[(out["split"] == "train").to_numpy()].sum())
        return mlflow.record(context, spec.name, dg.Output(out, metadata={
            "summary": dg.MetadataValue.json(summary), **{f"{s}_rows": v["rows"] for s, v in summary.items()},
            "gold_rows": summary["dev"]["rows"], "unlabelled_rows": summary["train"]["rows"],
            "test_rows": summary["test"]["rows"], "gold_cap": spec.splits.dev_size or "none (every labelled row)",
            "fm_budget": spec.fm.budget or "none (the FM labels every pool row)",
            **extra}), params=spec.splits.model_dump())

    return [dataset, dataset_expectations, splits]
