"""The one tracking path: an asset's returned metadata mirrored into its MLflow run, on a real SQLite store."""

import os

import dagster as dg
import mlflow
import pandas as pd

from fmops_pipelines.mlflow_store import using_uri
from fmops_pipelines.stages.conventions import table_value
from fmops_pipelines.stages.training import SpecialistConfig, with_overrides
from fmops_pipelines.tracking import TrackedRun


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_record_mirrors_metadata_by_kind(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with using_uri(uri):
        client = mlflow.MlflowClient(tracking_uri=uri)
        run_id = client.create_run(client.create_experiment("t")).info.run_id
    report, plots = tmp_path / "report.html", tmp_path / "plots"
    report.write_text("<html></html>")
    plots.mkdir()
    (plots / "confusion.png").write_bytes(_png())
    output = dg.Output({"v": 1}, metadata={
        "rows": 10, "coverage": 0.5, "passed": True, "source": "a.csv",
        "counts": dg.MetadataValue.json({"spam": 3}), "table": table_value(pd.DataFrame({"a": [1, 2]})),
        "plots": dg.MetadataValue.path(str(plots)), "note": dg.MetadataValue.md("# hi"),
        "report": dg.MetadataValue.path(str(report))})
    assert TrackedRun(client, run_id).record(output, params={"epochs": 3}) is output
    run = client.get_run(run_id)
    assert run.data.metrics == {"rows": 10.0, "coverage": 0.5, "passed": 1.0}
    assert run.data.params == {"source": "a.csv", "epochs": "3"}
    assert {a.path for a in client.list_artifacts(run_id)} == {"counts.json", "table.json", "plots", "note.md",
                                                               "report"}
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/confusion.png"]


def test_using_uri_restores_the_global_uris_and_leaks_nothing_to_subprocesses(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri()
    with using_uri(f"sqlite:///{tmp_path / 'x.db'}"):
        assert mlflow.get_tracking_uri().endswith("x.db") and mlflow.get_registry_uri().endswith("x.db")
        assert os.environ["MLFLOW_REGISTRY_URI"].endswith("x.db")  # what a subprocess would inherit
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    # a client made afterwards for another store reads that store's registry, not the block's
    other = f"sqlite:///{tmp_path / 'y.db'}"
    assert mlflow.MlflowClient(tracking_uri=other)._registry_uri == other


def test_run_config_overrides_epochs_only_when_given(assets_dir):
    from fmops_pipelines.spec import load_spec
    from tests.conftest import small_sms_spec, write_task

    spec = load_spec(write_task(assets_dir, "sms_spam", small_sms_spec()))
    assert with_overrides(spec, SpecialistConfig()) is spec
    changed = with_overrides(spec, SpecialistConfig(epochs=2))
    assert changed.specialist.ngram.epochs == changed.specialist.encoder.epochs == 2
    assert spec.specialist.ngram.epochs != 2 or spec.specialist.encoder.epochs != 2
