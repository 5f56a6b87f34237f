"""Data stage: the dataset (with its GX suite as a blocking check) and its splits."""


import dagster as dg
import pandas as pd

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import make_splits, split_summary
from fmops_pipelines.defs.common import asset_kwargs, ins, table_md
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @dg.asset(name="dataset", **asset_kwargs(spec, "data", {"pandas"},
              "Raw labelled text from the task's dataset source, labels mapped to the spec's names."))
    def dataset(context: dg.AssetExecutionContext, mlflow: MlflowTracking) -> dg.Output:
        df = load_dataset(spec)
        counts = df["label"].value_counts(dropna=False)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params({"source": spec.dataset.registry or spec.dataset.path, "rows": len(df)})
            mlf.log_dict({str(k): int(v) for k, v in counts.items()}, "label_counts.json")
        return dg.Output(df, metadata={
            "rows": len(df), "source": spec.dataset.registry or str(spec.dataset.path),
            "label_counts": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
            "preview": table_md(df[["id", "text", "label"]], 5)})

    @dg.asset_check(asset=dataset, name="dataset_expectations", blocking=True,
                    description="Great Expectations: unique non-null ids, non-empty text, labels in the declared set.")
    def dataset_expectations(dataset: pd.DataFrame) -> dg.AssetCheckResult:
        from fmops_pipelines.validation import validate_dataset

        success, rows = validate_dataset(dataset, spec.label_names)
        return dg.AssetCheckResult(passed=success, metadata={"expectations": table_md(pd.DataFrame(rows))})

    @dg.asset(name="splits", ins=ins(spec, "dataset"), **asset_kwargs(spec, "data", {"pandas"},
              "Dev (<=200 gold rows), held-out gold test, and unlabeled train; identical texts share a split."))
    def splits(context: dg.AssetExecutionContext, mlflow: MlflowTracking, dataset: pd.DataFrame) -> dg.Output:
        out = make_splits(dataset, spec.splits)
        summary = split_summary(out)
        with mlflow.run(context, spec.name):
            import mlflow as mlf

            mlf.log_params(spec.splits.model_dump())
            mlf.log_metrics({f"{s}_rows": v["rows"] for s, v in summary.items()})
        return dg.Output(out, metadata={"summary": dg.MetadataValue.json(summary),
                                        **{f"{s}_rows": v["rows"] for s, v in summary.items()}})

    return [dataset, dataset_expectations, splits]
