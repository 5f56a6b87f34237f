"""The last mile on a real SMS slice: inbox files become partitions (sensor, CLI backfill, nightly catch-up),
outputs are replaced atomically with lineage columns, drift is checked per partition and can relaunch
training, `fmops predict` streams, rejects bad files with one line, and survives kill -9."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
import pytest

from fmops_pipelines import paths
from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.launcher import prepare_environment, run_job, stored, task_job_definitions
from fmops_pipelines.spec import load_spec
from fmops_pipelines.stages.automation import catch_up_requests
from fmops_pipelines.stages.jobs import lifecycle_job_name
from tests.conftest import REPO, small_sms_spec, write_task

pytestmark = pytest.mark.integration
TASK = "sms_spam"
GATES = [{"metric": "test_macro_f1", "min": 0.5}]


def cli(*args: str, env: dict, **kwargs):
    return subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False, **kwargs)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A champion trained on the 700-row slice; `unseen` holds SMS rows the slice never used."""
    root = tmp_path_factory.mktemp("batch")
    os.environ["FMOPS_ASSETS_DIR"] = str(root / "assets")
    spec = load_spec(write_task(root / "assets", TASK, small_sms_spec(
        fixed_method=True, gates=GATES, inference={"settle_seconds": 0, "drift": {"retrain": True}})))
    assert run_job(spec, lifecycle_job_name(TASK)).exit_code == 0
    used = set(stored(TASK, "splits")["id"])
    everything = load_dataset(spec.model_copy(update={"splits": spec.splits.model_copy(update={"max_rows": None})}))
    unseen = everything[~everything["id"].isin(used)].reset_index(drop=True)
    yield spec, unseen, {**os.environ}
    os.environ.pop("FMOPS_ASSETS_DIR")


@dataclass
class Tick:
    run_requests: list
    skip_message: str | None = None
    cursor: str | None = None
    dynamic_partitions_requests: list = field(default_factory=list)


def evaluate_sensor(spec, name: str, cursor: str | None = None) -> Tick:
    """One evaluation of a sensor against the FMOPS_HOME instance (Dagster's direct sensor invocation)."""
    prepare_environment()
    sensor = task_job_definitions(spec).resolve_sensor_def(name)
    result = sensor(dg.build_sensor_context(instance=dg.DagsterInstance.get(), cursor=cursor))
    results = list(result) if isinstance(result, Iterator) else [result]
    tick = Tick([r for r in results if isinstance(r, dg.RunRequest)])
    for r in results:
        if isinstance(r, dg.SkipReason):
            tick.skip_message = r.skip_message
        elif isinstance(r, dg.SensorResult):
            tick.skip_message = r.skip_reason.skip_message if r.skip_reason else None
            tick.run_requests += list(r.run_requests or [])
            tick.cursor, tick.dynamic_partitions_requests = r.cursor, list(r.dynamic_partitions_requests or [])
    return tick


def test_inbox_files_become_partitions_scored_once_with_lineage(project):
    spec, unseen, env = project
    inbox = spec.inbox()
    inbox.mkdir(parents=True, exist_ok=True)
    unseen.iloc[:300][["id", "text"]].to_csv(inbox / "day1.csv", index=False)
    unseen.iloc[300:500][["id", "text"]].to_json(inbox / "day2.jsonl", orient="records", lines=True)
    (inbox / ".day3.csv.partial").write_text("text\nstill being copied\n")  # hidden: not an input yet

    first = evaluate_sensor(spec, f"{TASK}_inbox_sensor")
    assert sorted(r.partition_key for r in first.run_requests) == ["day1.csv", "day2.jsonl"]
    assert first.dynamic_partitions_requests[0].partition_keys == ["day1.csv", "day2.jsonl"]
    idle = evaluate_sensor(spec, f"{TASK}_inbox_sensor", first.cursor)
    assert idle.run_requests == [] and idle.skip_message.startswith("no new files")
    (inbox / ".day3.csv.partial").rename(inbox / "day3.csv")
    third = evaluate_sensor(spec, f"{TASK}_inbox_sensor", first.cursor)
    assert [r.partition_key for r in third.run_requests] == ["day3.csv"]  # exactly the new file

    result = cli("batch", TASK, env=env)
    assert result.returncode == 0, result.stderr
    outputs = {key: pd.read_parquet(paths.predictions_dir(TASK) / f"{key}.parquet")
               for key in ("day1.csv", "day2.jsonl", "day3.csv")}
    assert len(outputs["day1.csv"]) == 300 and len(outputs["day2.jsonl"]) == 200 and len(outputs["day3.csv"]) == 1
    champion = stored(TASK, "champion")["version"]
    instance = dg.DagsterInstance.get()
    for key, out in outputs.items():
        assert set(out["label"].astype(str)) <= {"ham", "spam"}
        assert out["fmops_partition"].astype(str).unique().tolist() == [key]
        assert out["fmops_model_version"].astype(str).unique().tolist() == [champion]
        assert out["fmops_label_model"].astype(str).iloc[0] == stored(TASK, "specialist")["label_model"]
        assert len(out["fmops_labelers_fingerprint"].astype(str).iloc[0]) == 16
        assert instance.get_run_by_id(out["fmops_run_id"].astype(str).iloc[0]).tags["dagster/partition"] == key

    record = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey([TASK, "batch_predictions"]), asset_partitions=["day1.csv"]), limit=1).records[0]
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert meta["rows"] == 300 and meta["model_version"] == champion and meta["texts_per_s"] > 0
    assert meta["fm_calls_equivalent"] == 300 and meta["fm_seconds_equivalent"] > meta["wall_seconds"]
    assert meta["drift"]["checked"] and not meta["drift_detected"]

    # re-materializing a partition replaces its output: same rows, no duplicates, the new run's id
    result = cli("batch", TASK, "--partition", "day1.csv", env=env)
    assert result.returncode == 0, result.stderr
    again = pd.read_parquet(paths.predictions_dir(TASK) / "day1.csv.parquet")
    assert again["id"].tolist() == outputs["day1.csv"]["id"].tolist()
    assert again["fmops_run_id"].iloc[0] != outputs["day1.csv"]["fmops_run_id"].iloc[0]

    (inbox / "broken.csv").write_bytes(b"id,text\n1,fine\n2,one,field,too many\n")
    result = cli("batch", TASK, "--partition", "broken.csv", env=env)
    assert result.returncode == 2 and not (paths.predictions_dir(TASK) / "broken.csv.parquet").exists()
    assert f"error: {TASK}/broken.csv: {inbox / 'broken.csv'}: line 3: expected 2 fields, got 4" in result.stderr
    (inbox / "broken.csv").unlink()

    assert "nothing to score" in cli("batch", TASK, "--rescore", env=env).stderr  # all by the champion already
    fresh = evaluate_sensor(spec, f"{TASK}_inbox_sensor")  # a sensor with no cursor: outputs are newer than inputs
    assert fresh.run_requests == [] and fresh.cursor
    assert catch_up_requests(spec, instance) == []
    (paths.predictions_dir(TASK) / "day2.jsonl.parquet").unlink()
    assert [r.partition_key for r in catch_up_requests(spec, instance)] == ["day2.jsonl"]


def test_a_drifted_partition_warns_and_relaunches_training(project):
    spec, unseen, env = project
    quiet = evaluate_sensor(spec, f"{TASK}_drift_retrain_sensor")  # the latest partition scored fine
    assert quiet.run_requests == [] and "did not drift" in quiet.skip_message
    spam = unseen[unseen["label"] == "spam"].iloc[:150]
    spam[["id", "text"]].to_parquet(spec.inbox() / "spam_wave.parquet")
    result = cli("batch", TASK, "--partition", "spam_wave.parquet", env=env)
    assert result.returncode == 0, result.stderr
    checks = dg.DagsterInstance.get().event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey([TASK, "batch_predictions"]), "prediction_drift"), limit=1)
    evaluation = checks[0].event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    (request,) = evaluate_sensor(spec, f"{TASK}_drift_retrain_sensor").run_requests
    assert request.job_name in (None, lifecycle_job_name(TASK)) and request.tags["fmops/partition"] == "spam_wave.parquet"


def test_predict_streams_with_lineage_and_rejects_bad_files_in_one_line(project, tmp_path):
    _, unseen, env = project
    unseen.iloc[:120][["id", "text"]].to_csv(tmp_path / "in.csv", index=False)
    result = cli("predict", TASK, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.parquet"),
                 env=env)
    assert result.returncode == 0, result.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 120 and out["fmops_run_id"].astype(str).iloc[0].startswith("cli-")
    assert out["fmops_model_version"].astype(str).iloc[0] == stored(TASK, "champion")["version"]

    (tmp_path / "bad.csv").write_bytes(b"id,text\n1,fine\n2,one,field,too many\n3,fine\n")
    result = cli("predict", TASK, "--input", str(tmp_path / "bad.csv"), "--output", str(tmp_path / "bad.parquet"),
                 env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'bad.csv'}: line 3: expected 2 fields, got 4"
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.parquet").exists()


def test_kill_9_mid_file_then_rerun_gives_one_row_per_input_row(project, tmp_path):
    _, unseen, env = project
    n = 400_000
    pd.DataFrame({"id": range(n), "text": unseen["text"].sample(n, replace=True, random_state=0).tolist()}).to_csv(
        tmp_path / "big.csv", index=False)
    target = tmp_path / "big.parquet"
    args = [sys.executable, "-m", "fmops_pipelines.cli", "predict", TASK, "--input", str(tmp_path / "big.csv"),
            "--output", str(target), "--workers", "1", "--batch-size", "256"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.stat().st_size > 1 << 16 for p in tmp_path.glob(".big.parquet.tmp-*")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists() and list(tmp_path.glob(".big.parquet.tmp-*"))  # killed half-way: only a temporary

    result = cli("predict", TASK, "--input", str(tmp_path / "big.csv"), "--output", str(target), env=env)
    assert result.returncode == 0, result.stderr
    ids = pd.read_parquet(target, columns=["id"])["id"].astype(int)
    assert len(ids) == n and ids.is_unique and ids.tolist() == list(range(n))
    assert not list(tmp_path.glob(".big.parquet.tmp-*"))  # the dead run's temporary was removed


def test_a_new_champion_rescores_existing_partitions_with_one_command(project):
    spec, _, env = project
    before = {p.name: pd.read_parquet(p)["fmops_model_version"].astype(str).iloc[0]
              for p in paths.predictions_dir(TASK).glob("*.parquet")}
    assert run_job(spec, lifecycle_job_name(TASK)).exit_code == 0  # retrained (FM answers cached): a new champion
    champion = stored(TASK, "champion")["version"]
    assert set(before.values()) == {str(int(champion) - 1)}
    inbox = sorted(p.name for p in spec.inbox().iterdir())  # day2.jsonl's output was deleted above
    assert sorted(f"{name}.parquet" for name in inbox) == sorted({*before, "day2.jsonl.parquet"})
    # the nightly schedule would re-score every partition, and so does one command
    assert sorted(r.partition_key for r in catch_up_requests(spec, dg.DagsterInstance.get())) == inbox
    result = cli("batch", TASK, "--rescore", env=env)
    assert result.returncode == 0, result.stderr
    after = {p.name: pd.read_parquet(p)["fmops_model_version"].astype(str).unique().tolist()
             for p in paths.predictions_dir(TASK).glob("*.parquet")}
    assert after == {f"{name}.parquet": [champion] for name in inbox}
