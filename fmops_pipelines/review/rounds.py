"""A review round, end to end: the latest queue goes to a person (Label Studio or a CSV file), their answers come
back into the gold store. Used by `fmops review` and by the review sensor; no Dagster here.

A row already sent in an earlier round and not answered yet is not sent again (the person still has it); a row
answered is gold from the next run on and leaves the pool, so the next queue cannot hold it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fmops_pipelines.errors import EnvironmentProblem, StateError
from fmops_pipelines.review.annotations import Annotation, read_csv, to_entries, write_csv
from fmops_pipelines.review.label_studio import LabelStudio
from fmops_pipelines.review.store import GoldStore
from fmops_pipelines.spec import TaskSpec
from fmops_pipelines.storage import latest

URL_ENV, TOKEN_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"


@dataclass
class Imported:
    new: int  # entries added to the gold store
    seen: int  # annotations read (already-stored ones included)
    rechecked_changed: int  # of the new ones: gold rows whose label the person changed


@dataclass
class Pushed:
    round: int | None  # None: nothing new to send
    label: int
    recheck: int
    where: str


def record(task: str, action: str, params: dict, metrics: dict) -> None:
    """One MLflow run per round pushed and per import, in the task's experiment (tag fmops/review=<action>):
    the rounds sit beside the runs they feed."""
    import mlflow

    from fmops_pipelines import paths
    from fmops_pipelines.mlflow_store import experiment_id, using_uri

    uri = paths.mlflow_tracking_uri()
    with using_uri(uri), mlflow.start_run(experiment_id=experiment_id(uri, task), run_name=f"review-{action}",
                                          tags={"fmops/review": action}):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)


def label_studio_from_env() -> LabelStudio:
    url, token = os.environ.get(URL_ENV, "").strip(), os.environ.get(TOKEN_ENV, "").strip()
    if not url or not token:
        raise EnvironmentProblem(f"Label Studio needs {URL_ENV} and {TOKEN_ENV} (start one with "
                                 "deploy/local/label_studio.sh start), or use --export FILE / --import FILE")
    return LabelStudio(url, token)


def _latest(task: str, asset: str):
    value = latest(task, asset)
    if value is None:
        raise StateError(f"{task}: no {asset} yet; run `fmops run {task}` first")
    return value


def pending(store: GoldStore, task: str) -> set[str]:
    """Rows sent to a person and not answered yet, plus every row answered (never asked twice)."""
    return set(store.queued(task)["row_id"]) | set(store.reviewed(task)["row_id"])


def next_rows(spec: TaskSpec, store: GoldStore) -> pd.DataFrame:
    queue = _latest(spec.name, "review_queue")
    return queue[~queue["id"].astype(str).isin(pending(store, spec.name))].reset_index(drop=True)


def _model_version(task: str) -> str | None:
    specialist = latest(task, "specialist")
    return None if specialist is None else str(specialist.get("version"))


def import_annotations(spec: TaskSpec, store: GoldStore, annotations: list[Annotation]) -> Imported:
    """Check every annotation not stored yet against the latest splits, then store them in one transaction."""
    known = store.known_keys(spec.name)
    fresh = [a for a in annotations if a.source_key not in known]
    if not fresh:
        return Imported(0, len(annotations), 0)
    entries = to_entries(fresh, _latest(spec.name, "splits"), spec.label_names, store.reviewed(spec.name))
    changed = sum(e.previous_label is not None and e.previous_label != e.label for e in entries)
    out = Imported(store.append(spec.name, entries), len(annotations), changed)
    if out.new:
        record(spec.name, "import", {"source": fresh[0].source, "rounds": ",".join(
            sorted({str(a.round) for a in fresh}))}, {"new_labels": out.new, "gold_labels_changed": changed,
                                                      "reviewed_rows": len(store.reviewed(spec.name))})
    return out


def export_round(spec: TaskSpec, store: GoldStore, path: Path) -> Pushed:
    rows = next_rows(spec, store)
    if rows.empty:
        return Pushed(None, 0, 0, str(path))
    number = store.next_round(spec.name)
    write_csv(rows.assign(round=number), path)  # first: a file that could not be written leaves no round behind
    store.open_round(spec.name, number, f"csv:{path}", _model_version(spec.name),
                     [(str(r.id), r.kind, r.reason, None) for r in rows.itertuples()])
    return _pushed(number, rows, str(path), spec.name)


def import_file(spec: TaskSpec, store: GoldStore, path: Path) -> Imported:
    return import_annotations(spec, store, read_csv(path))


def _project(spec: TaskSpec, store: GoldStore, client: LabelStudio) -> int:
    project = client.ensure_project(store.project(spec.name, client.url), spec.review.project_title or
                                    f"fmops: {spec.name}", spec.label_names)
    store.set_project(spec.name, client.url, project)
    return project


def pull(spec: TaskSpec, store: GoldStore, client: LabelStudio) -> Imported:
    project = store.project(spec.name, client.url)
    if project is None:
        return Imported(0, 0, 0)
    return import_annotations(spec, store, client.annotations(project))


def push(spec: TaskSpec, store: GoldStore, client: LabelStudio) -> Pushed:
    rows = next_rows(spec, store)
    project = _project(spec, store, client)
    if rows.empty:
        return Pushed(None, 0, 0, f"{client.url}/projects/{project}")
    version = _model_version(spec.name)
    # the round is recorded after Label Studio took the tasks: a failed push leaves no round behind
    number = store.next_round(spec.name)
    ids = client.push(project, rows, number, version)
    store.open_round(spec.name, number, f"label_studio:{client.url}/projects/{project}", version,
                     [(str(r.id), r.kind, r.reason, str(i)) for r, i in zip(rows.itertuples(), ids)])
    return _pushed(number, rows, f"{client.url}/projects/{project}", spec.name)


def _pushed(number: int, rows: pd.DataFrame, where: str, task: str) -> Pushed:
    out = Pushed(number, int((rows["kind"] == "label").sum()), int((rows["kind"] == "recheck").sum()), where)
    record(task, "push", {"round": number, "destination": where, "model_version": _model_version(task)},
           {"rows_to_label": out.label, "gold_rows_to_recheck": out.recheck})
    return out
