"""Deployment stage: promote a gated specialist to `champion`, then batch-predict with the champion."""

import time
from pathlib import Path

import dagster as dg
import pandas as pd

from fmops_pipelines.data.readers import read_texts
from fmops_pipelines.data.splits import part
from fmops_pipelines.errors import StateError
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import task_asset
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"mlflow"}, "The registry's `champion` alias, moved only to a specialist whose gates all "
                                  "passed in this run.")
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowTracking, evaluation: dict) -> dg.Output:
        from fmops_pipelines.specialist.packaging import set_champion

        if not evaluation["passed"]:  # the blocking checks stop this step first; this guards direct calls
            failed = [g["name"] for g in evaluation["gates"] if not g["passed"]]
            raise StateError(f"{spec.name}: gates failed ({', '.join(failed)}); champion left unchanged")
        version = evaluation["model"]["version"]
        with mlflow.active():
            previous = set_champion(spec.name, version)
        value = {"name": evaluation["model"]["name"], "version": version, "alias": "champion", "previous": previous}
        return mlflow.record(context, spec.name, dg.Output(value, metadata={"version": version,
                                                                            "previous": str(previous)}))

    @task_asset(spec, {"torch", "pandas"}, "Labels and class probabilities from the champion for the inference "
                                           "input (default: the unlabeled pool).", deps=[champion])
    def batch_predictions(context: dg.AssetExecutionContext, mlflow: MlflowTracking, splits: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.specialist.packaging import (
            attach_predictions,
            champion_version,
            load_specialist,
            predict_frame,
        )

        with mlflow.active():
            version = champion_version(spec.name)
            if version is None:
                raise StateError(f"{spec.name}: no champion model yet; materialize {spec.name}/champion first")
            model = load_specialist(spec.name, version)
        column, source = spec.inference.text_column, spec.inference.input
        if source:
            inputs = read_texts(Path(source) if Path(source).is_absolute() else spec.root / source, column)
        else:
            source, column, inputs = "unlabeled train split", "text", part(splits, "train")[["id", "text"]]
        start = time.perf_counter()
        preds = predict_frame(model, inputs[column].tolist(), spec.inference.batch_size)
        rate = len(inputs) / max(time.perf_counter() - start, 1e-9)
        counts = {str(k): int(v) for k, v in preds["label"].value_counts().items()}
        return mlflow.record(context, spec.name, dg.Output(attach_predictions(inputs, preds), metadata={
            "rows": len(inputs), "source": source, "texts_per_s": round(rate, 1), "model_version": version,
            "label_counts": dg.MetadataValue.json(counts)}))

    return [champion, batch_predictions]
