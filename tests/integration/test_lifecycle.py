"""The whole graph through Dagster on a 700-row slice of the real SMS data, then the CLI on its results."""

import io
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
from fmops_pipelines.evaluation.evaluate import LABEL_MODEL_TAUGHT
from fmops_pipelines.inference.tuning import Overrides, cache_path
from fmops_pipelines.launcher import run_job, stored
from fmops_pipelines.spec import load_spec
from fmops_pipelines.stages.jobs import lifecycle_job_name
from tests.conftest import REPO, small_sms_spec, write_task

pytestmark = pytest.mark.integration
GATES = [{"metric": "test_macro_f1", "min": 0.5}, {"metric": "lift_over_best_prompt", "min": -1.0},
         {"metric": "speedup_over_fm", "min": 10}]


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *args], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    os.environ["FMOPS_ASSETS_DIR"] = str(root / "assets")
    spec = load_spec(write_task(root / "assets", "sms_spam", small_sms_spec(gates=GATES, fm_rules={"enabled": True})))
    console = io.StringIO()
    outcome = run_job(spec, lifecycle_job_name("sms_spam"), out=console)
    outcome.console = console.getvalue()
    yield spec, outcome, {**os.environ}
    os.environ.pop("FMOPS_ASSETS_DIR")


def test_run_materializes_every_asset(project):
    _spec, outcome, _ = project
    assert outcome.exit_code == 0, outcome
    assert outcome.errors == [] and outcome.failed_gates == []
    events = DagsterInstance.get().all_logs(outcome.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    assert {e.dagster_event.asset_key.path[-1] for e in events} == {
        "dataset", "splits", "prompt_scores", "weak_label_matrix", "label_model", "gold_teacher", "training_labels",
        "specialist", "evaluation", "review_queue", "champion"}  # batch_predictions is partitioned by inbox file: see test_batch_inference


def test_the_console_shows_one_line_per_step_with_its_checks_after_it(project):
    lines = project[1].console.splitlines()
    steps = [line for line in lines if line.startswith("  [ok ]")]
    assert [line.split()[2] for line in steps] == [
        "sms_spam/dataset", "sms_spam/dataset:dataset_expectations", "sms_spam/splits", "sms_spam/gold_teacher",
        "sms_spam/prompt_scores",
        "sms_spam/weak_label_matrix", "sms_spam/weak_label_matrix:label_matrix_expectations", "sms_spam/label_model",
        "sms_spam/training_labels", "sms_spam/training_labels:training_label_expectations", "sms_spam/specialist",
        "sms_spam/evaluation", "sms_spam/review_queue", "sms_spam/champion"]
    assert all(line.endswith("passed") for line in steps if ":" in line.split()[2])  # a check step: its verdict
    gates = lines[lines.index(next(line for line in steps if "/evaluation" in line)) + 1:][:len(GATES)]
    assert [line.split()[1] for line in gates] == [g["metric"] for g in GATES]
    assert all(" passed value " in line for line in gates)


def test_labels_and_probabilities_are_well_formed(project):
    _spec, _, _ = project
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


def test_rules_mined_from_the_fm_vote_in_the_matrix_and_export_for_review(project):
    import yaml

    _, _, env = project
    matrix = stored("sms_spam", "weak_label_matrix")
    table = pd.DataFrame(matrix.attrs["fm_rules"])
    kept = table[table["kept"]]
    assert len(table) and set(table["label"]) <= {"ham", "spam"}
    # each label with kept phrases votes through one rule, lf_fm_<label>, beside the prompts
    assert sorted(c for c in matrix.columns if c.startswith("lf_fm_")) == sorted(f"lf_fm_{x}" for x in set(kept["label"]))
    result = cli("rules", "sms_spam", env=env)
    assert result.returncode == 0, result.stderr
    block = yaml.safe_load(result.stdout) or {}
    exported = {lf["label"]: lf["keywords"] for lf in block.get("labeling_functions") or []}
    assert exported == {label: group["keyword"].tolist() for label, group in kept.groupby("label")}
    everything = cli("rules", "sms_spam", "--all", env=env)
    assert everything.returncode == 0 and "dev_precision" in everything.stdout


def test_no_dev_figure_the_specialist_reports_read_the_rows_it_scores(project):
    """The gold teacher votes in the matrix, so the label model's students learned its all-gold votes on the pool:
    their dev scores are flagged, and the shipped student's dev figure is one that read no gold (a recipe with gold
    rows is scored out of fold), else it reports none of its own."""
    from dagster import AssetKey

    from fmops_pipelines.supervision.label_matrix import GOLD_TEACHER

    assert GOLD_TEACHER in stored("sms_spam", "weak_label_matrix").columns
    record = DagsterInstance.get().fetch_materializations(AssetKey(["sms_spam", "specialist"]), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert metadata["label_model_students_dev_read_gold"].value is True
    rows = [r.data for r in metadata["candidates"].value.records]
    assert rows and all(r["dev_reads_gold"] == (r["taught_by"] == "label_model") for r in rows)
    shipped = stored("sms_spam", "specialist")
    if shipped["taught_by"] == "label_model":
        assert shipped["dev_macro_f1"] is None and 0 <= shipped["dev_read_gold"]["macro_f1"] <= 1
    else:
        scores = metadata["gold_rows"].value["out_of_fold_dev"]
        assert round(shipped["dev_macro_f1"], 4) in scores.values() and "dev_read_gold" not in shipped


def test_gates_were_evaluated_and_the_champion_alias_set(project):
    _spec, outcome, _ = project
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
    assert list(summary) == ["task", "model", "test", "baselines", "throughput", "labeling", "gates", "passed",
                             "teaching"]  # the contract's keys, then the additive ones
    assert summary["model"]["alias"] == "champion"
    # whether gold paid: the gold teacher beside the gold-only baselines, and the specialist against its teacher
    assert summary["baselines"]["gold_teacher"]["kind"].removesuffix("+self_training") in (
        "logreg_fm_embeddings", "tfidf_logreg", "logreg_fm_embeddings_tokens_tfidf")
    assert {b["kind"] for b in summary["baselines"]["gold_only"]} == {
        "logreg_fm_embeddings", "tfidf_logreg", "logreg_fm_embeddings_tfidf", "logreg_fm_embeddings_tokens_tfidf"}
    # a label model's "teacher" row only where its labels taught the specialist
    taught_by = stored("sms_spam", "specialist")["taught_by"]
    assert ("teacher" in summary["baselines"]) <= (taught_by in LABEL_MODEL_TAUGHT), (taught_by, summary["baselines"])
    teaching = summary["teaching"]
    assert 0 <= teaching["student_pool_agreement"] <= 1 and teaching["finding"]
    # the specialist's figure is the serving scorer's as batch inference tunes it, cached for `fmops predict`
    served = summary["throughput"]["specialist_serving"]
    assert served["how"] in ("measured", "cached") and served["workers"] >= 1 and served["batch_size"] >= 1024
    assert cache_path("sms_spam", summary["model"]["version"], "cpu", Overrides()).is_file()

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


def _csv(content: bytes):
    def write(tmp_path, spec):
        (tmp_path / "bad.csv").write_bytes(content)
        spec["dataset"] = {"path": str(tmp_path / "bad.csv")}
    return write


def _raising_rule(tmp_path, spec):
    (tmp_path / "assets" / "sms_spam").mkdir(parents=True, exist_ok=True)
    (tmp_path / "assets" / "sms_spam" / "rules.py").write_text(
        "from fmops_pipelines.supervision.lfs import labeling_function\n"
        "@labeling_function(label='spam')\ndef fragile(text):\n    return text.split()[4] == 'free'\n")


def _corrupt_dataset(tmp_path, spec):
    copy = tmp_path / "data" / "sms_spam_uci" / "SMSSpamCollection"
    copy.parent.mkdir(parents=True)
    copy.write_bytes((paths.data_home() / "sms_spam_uci" / "SMSSpamCollection").read_bytes()[:-10])


# Bad input, case by case: (set-up, the one error line it must give). Each leaves earlier results as they were.
BAD_INPUT = {
    "malformed task.yaml": (
        lambda tmp_path, spec: "dataset: [unclosed\n",
        "error: {tmp}/assets/sms_spam/task.yaml: line 2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    "unknown field": (
        lambda tmp_path, spec: spec.update(prompts={**spec["prompts"], "max_labeller": 3}),
        "error: {tmp}/assets/sms_spam/task.yaml: prompts.max_labeller: Extra inputs are not permitted"),
    "label outside the label set": (
        _csv(b"text,label\nhello,ham\nbuy eggs,eggs\n"),
        ("error: {tmp}/bad.csv: row id=row-000001: label 'eggs' in column 'label' (dataset.label_column) is not "
         "one of ['ham', 'spam'] (map it with dataset.label_map)")),
    "missing text column": (
        _csv(b"message,label\nhello,ham\n"),
        "error: {tmp}/bad.csv: missing column 'text' (dataset.text_column); columns are ['message', 'label']"),
    "empty file": (_csv(b""), "error: {tmp}/bad.csv: the file is empty (not even a header row)"),
    "non-UTF-8 bytes": (
        _csv("text,label\nhello,ham\ncaf\u00e9 ol\u00e9,spam\n".encode("latin-1")),
        "error: {tmp}/bad.csv: line 3 is not UTF-8 (byte 0xe9); save the file as UTF-8"),
    "broken CSV quoting": (
        _csv(b'text,label\nhello,ham\n"win a prize,spam\nok,ham\n'),
        "error: {tmp}/bad.csv: broken CSV quoting in the record that starts on line 3 (unexpected end of data)"),
    "dataset checksum mismatch": (
        _corrupt_dataset,
        ("error: {tmp}/data/sms_spam_uci/SMSSpamCollection: checksum mismatch: expected sha256 "
         "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d, got "
         "800e3133896f2e6e3e405d75ca3886f398f11954104dc0e85b277c99b518c474")),
    "labeling function that raises": (
        _raising_rule,
        ("error: labeling function 'fragile' ({tmp}/assets/sms_spam/rules.py) failed on row id=sms-00038: "
         "IndexError: list index out of range")),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_stops_with_one_line_and_keeps_earlier_results(project, tmp_path, case):
    _, _, env = project
    before = {name: (paths.storage_dir() / "sms_spam" / f"{name}.json").read_text() for name in ("evaluation", "champion")}
    spec = small_sms_spec(gates=GATES)
    setup, expected = BAD_INPUT[case]
    raw = setup(tmp_path, spec)
    task_yaml = write_task(tmp_path / "assets", "sms_spam", spec)
    if isinstance(raw, str):
        task_yaml.write_text(raw)
    run_env = {**env, "FMOPS_ASSETS_DIR": str(tmp_path / "assets")}
    if case == "dataset checksum mismatch":
        run_env["FMOPS_DATA_HOME"] = str(tmp_path / "data")
    result = cli("run", "sms_spam", env=run_env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert errors == [expected.format(tmp=tmp_path)]
    after = {name: (paths.storage_dir() / "sms_spam" / f"{name}.json").read_text() for name in before}
    assert after == before
