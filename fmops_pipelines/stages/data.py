"""Data stage: the dataset (with its GX suite as a blocking check) and its splits."""

import dagster as dg
import pandas as pd

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import declared_splits, make_splits, require_pool, split_summary, with_reviewed
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
        column = spec.dataset.declared_split_column
        if column:
            out, counts = declared_splits(dataset, spec.splits, column)
            extra = {"declared_by": column, **counts}
        else:
            out, extra = make_splits(dataset, spec.splits), {"declared_by": "random (dataset.split_column unset)"}
            if "split" in dataset.columns and dataset["split"].astype(str).str.lower().isin(["train", "dev", "test"]).all():
                context.log.warning(f"{spec.name}: the dataset has a 'split' column that was not used; set "
                                    "dataset.split_column: split in task.yaml to keep its test rows as test")
        out, reviewed = with_reviewed(out, dataset, GoldStore().reviewed(spec.name))
        require_pool(out)
        summary = split_summary(out)
        return mlflow.record(context, spec.name, dg.Output(out, metadata={
            "summary": dg.MetadataValue.json(summary), **{f"{s}_rows": v["rows"] for s, v in summary.items()},
            "gold_rows": summary["dev"]["rows"], "unlabelled_rows": summary["train"]["rows"],
            "test_rows": summary["test"]["rows"], "gold_cap": spec.splits.dev_size or "none (every labelled row)",
            **reviewed, **extra}), params=spec.splits.model_dump())

    return [dataset, dataset_expectations, splits]
