"""The whole graph through Dagster on a 700-row slice of the real SMS data, then the CLI on its results."""

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterEventType, DagsterInstance

from fmops_pipelines import paths
from fmops_pipelines.launcher import run_job, stored
from fmops_pipelines.spec import load_spec
from fmops_pipelines.stages.jobs import lifecycle_job_name
from tests.conftest import REPO, small_sms_spec, write_task

pytestmark = pytest.mark.integration
GATES = [{"metric": "test_macro_f1", "min": 0.5}, {"metric": "lift_over_best_prompt", "min": -1.0},
         {"metric": "speedup_over_fm", "min": 10}]


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    os.environ["FMOPS_ASSETS_DIR"] = str(root / "assets")
    spec = load_spec(write_task(root / "assets", "sms_spam", small_sms_spec(gates=GATES)))
    outcome = run_job(spec, lifecycle_job_name("sms_spam"))
    yield spec, outcome, {**os.environ}
    os.environ.pop("FMOPS_ASSETS_DIR")


def test_run_materializes_every_asset(project):
    spec, outcome, _ = project
    assert outcome.exit_code == 0, outcome
    assert outcome.errors == [] and outcome.failed_gates == []
    events = DagsterInstance.get().all_logs(outcome.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    assert {e.dagster_event.asset_key.path[-1] for e in events} == {
        "dataset", "splits", "prompt_scores", "weak_label_matrix", "label_model", "training_labels", "specialist",
        "evaluation", "champion"}  # batch_predictions is partitioned by inbox file: see test_batch_inference


def test_labels_and_probabilities_are_well_formed(project):
    spec, _, _ = project
    matrix = stored("sms_spam", "weak_label_matrix")
    votes = matrix.drop(columns=["id", "split"]).to_numpy()
    assert set(np.unique(votes)) <= {-1, 0, 1} and (votes != -1).any()
    labels = stored("sms_spam", "training_labels")
    assert np.allclose(labels[["p_ham", "p_spam"]].sum(axis=1), 1.0, atol=1e-6)
    # one row per unlabeled train row for each label model the training stage chose among
    per_kind = labels.groupby("label_model")["id"].apply(lambda ids: tuple(sorted(ids)))
    assert per_kind.nunique() == 1
    splits = stored("sms_spam", "splits")
    assert set(per_kind.iloc[0]) == set(splits.loc[splits["split"] == "train", "id"])


def test_gates_were_evaluated_and_the_champion_alias_set(project):
    spec, outcome, _ = project
    checks = DagsterInstance.get().all_logs(outcome.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    verdicts = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
                for e in checks}
    assert verdicts == {"dataset_expectations": True, "label_matrix_expectations": True,
                        "training_label_expectations": True, "test_macro_f1": True, "lift_over_best_prompt": True,
                        "speedup_over_fm": True}
    summary = stored("sms_spam", "evaluation")
    assert summary["passed"] and summary["test"]["n"] == (stored("sms_spam", "splits")["split"] == "test").sum()
    assert summary["test"]["macro_f1"] > summary["baselines"]["best_prompt"]["macro_f1"]
    client = mlflow.MlflowClient(tracking_uri=paths.mlflow_tracking_uri(), registry_uri=paths.mlflow_tracking_uri())
    assert str(client.get_model_version_by_alias("sms_spam-specialist", "champion").version) == summary["model"]["version"]
    runs = client.search_runs(client.get_experiment_by_name("fmops/sms_spam").experiment_id,
                              filter_string=f"tags.`dagster.run_id` = '{outcome.run_id}'")
    assert {r.data.tags["dagster.asset_key"] for r in runs} >= {"sms_spam/prompt_scores", "sms_spam/specialist",
                                                               "sms_spam/evaluation"}


def test_cli_evaluate_predict_and_warm_rerun(project, tmp_path):
    spec, _, env = project
    result = cli("evaluate", "sms_spam", "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary) == ["task", "model", "test", "baselines", "throughput", "labeling", "gates", "passed"]
    assert summary["model"]["alias"] == "champion"

    (tmp_path / "in.csv").write_text("text\n\"URGENT! You have won a 1 week FREE membership, call 09061701461\"\nok see you\n")
    result = cli("predict", "sms_spam", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"),
                 env=env)
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["text", "label", "p_ham", "p_spam", "fmops_model", "fmops_model_version",
                                 "fmops_label_model", "fmops_labelers_fingerprint", "fmops_partition", "fmops_run_id"]
    assert set(out["label"]) <= {"ham", "spam"} and (out["fmops_model_version"].astype(str) == summary["model"]["version"]).all()

    outcome = run_job(spec, lifecycle_job_name("sms_spam"))
    assert outcome.exit_code == 0
    rerun = stored("sms_spam", "evaluation")
    assert rerun["labeling"]["fm_calls"] == 0 and rerun["labeling"]["fm_cache_hits"] > 0
    assert int(rerun["model"]["version"]) == int(summary["model"]["version"]) + 1


def test_bad_data_stops_with_one_line_and_keeps_earlier_results(project, tmp_path):
    spec, _, env = project
    before = {name: (paths.storage_dir() / "sms_spam" / f"{name}.json").read_text() for name in ("evaluation", "champion")}
    bad = small_sms_spec(gates=GATES, dataset={"path": str(tmp_path / "bad.csv")})
    (tmp_path / "bad.csv").write_text("message,label\nhello,ham\n")
    write_task(tmp_path / "assets", "sms_spam", bad)
    result = cli("run", "sms_spam", env={**env, "FMOPS_ASSETS_DIR": str(tmp_path / "assets")})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'bad.csv'}: missing column 'text' (dataset.text_column); "
                      "columns are ['message', 'label']"]
    assert "Traceback" not in result.stderr
    after = {name: (paths.storage_dir() / "sms_spam" / f"{name}.json").read_text() for name in before}
    assert after == before
