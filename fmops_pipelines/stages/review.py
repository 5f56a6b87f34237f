"""Review stage: the rows worth a person's label next and the gold labels that look wrong, after each training.

It does not wait for the gates: a specialist that fails them is the one that most needs labels. `fmops review`
(or the review sensor) sends the queue to Label Studio or a CSV and brings the answers into the gold store.
"""

import dagster as dg
import pandas as pd

from fmops_pipelines.resources import FoundationModelResource
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.stages.conventions import table_value, task_asset
from fmops_pipelines.tracking import MlflowTracking


def build(spec: TaskSpec) -> list:
    @task_asset(spec, {"sklearn", "pandas"}, "Rows worth a person's label next (the specialist, label model and gold "
                                             "teacher unsure or split, spread over the FM's embeddings) and gold "
                                             "labels that look wrong (cleanlab); each with why.")
    def review_queue(context: dg.AssetExecutionContext, mlflow: MlflowTracking, fm: FoundationModelResource,
                     splits: pd.DataFrame, specialist: dict, training_labels: pd.DataFrame,
                     gold_teacher: pd.DataFrame) -> dg.Output:
        from fmops_pipelines.review.queue import build_queue
        from fmops_pipelines.review.rounds import pending
        from fmops_pipelines.review.store import GoldStore
        from fmops_pipelines.specialist.packaging import load_specialist

        with mlflow.active():
            model = load_specialist(spec.name, specialist["version"])
        r = spec.review
        queue = build_queue(model, fm.for_spec(spec.fm), splits, training_labels, specialist["label_model"],
                            gold_teacher, spec.label_names, r.budget, r.rechecks, r.candidates,
                            exclude=pending(GoldStore(), spec.name), seed=spec.splits.seed)
        return mlflow.record(context, spec.name, dg.Output(queue, metadata={
            "rows": len(queue), "to_label": int((queue["kind"] == "label").sum()),
            "to_recheck": int((queue["kind"] == "recheck").sum()), "model_version": specialist["version"],
            "strategy": "committee margin (specialist, label model, gold teacher) with k-means diversity; "
                        "cleanlab on the gold teacher's out-of-fold probabilities",
            "queue": table_value(queue.drop(columns=["priority"]))}))

    return [review_queue]
