import json
import subprocess
import sys

import dagster as dg
import pytest

from fmops_pipelines.defs.resources import resources
from fmops_pipelines.spec import discover_specs
from fmops_pipelines.stages import definitions_for
from tests.conftest import REPO

STAGES = {"dataset": "data", "splits": "data", "prompt_scores": "exploration", "weak_label_matrix": "labeling",
          "label_model": "labeling", "gold_teacher": "labeling", "training_labels": "labeling", "specialist": "training",
          "evaluation": "evaluation", "champion": "deployment", "batch_predictions": "batch_inference"}


def build_definitions(specs) -> dg.Definitions:
    return dg.Definitions.merge(definitions_for(specs), resources())


def test_every_task_has_the_whole_lifecycle_with_conventions():
    specs = discover_specs(REPO / "assets")
    defs = build_definitions(specs)
    graph = defs.resolve_asset_graph()
    for task, spec in specs.items():
        for name, stage in STAGES.items():
            node = graph.get(dg.AssetKey([task, name]))
            assert node.group_name == task and node.tags["stage"] == stage  # a group per task, a tag per stage
            assert node.kinds and node.owners and node.code_version and node.description
        upstream = {k.path[-1] for k in graph.get(dg.AssetKey([task, "evaluation"])).parent_keys}
        assert upstream == {"splits", "prompt_scores", "weak_label_matrix", "label_model", "specialist",
                            "training_labels", "gold_teacher"}
        check_names = {k.name for k in graph.asset_check_keys if k.asset_key.path[0] == task}
        assert check_names == {"dataset_expectations", "label_matrix_expectations", "training_label_expectations",
                               "prediction_drift", *(g.check_name for g in spec.gates)}
        for job in ("lifecycle", "evaluation", "batch_inference"):
            defs.resolve_job_def(f"{task}_{job}")
        batch = graph.get(dg.AssetKey([task, "batch_predictions"]))
        assert isinstance(batch.partitions_def, dg.DynamicPartitionsDefinition)
        assert batch.partitions_def.name == f"{task}_inbox"
        lifecycle = defs.resolve_job_def(f"{task}_lifecycle").asset_layer.selected_asset_keys
        assert dg.AssetKey([task, "champion"]) in lifecycle and dg.AssetKey([task, "batch_predictions"]) not in lifecycle
        assert defs.resolve_sensor_def(f"{task}_inbox_sensor").default_status == dg.DefaultSensorStatus.RUNNING
        assert defs.resolve_schedule_def(f"{task}_nightly_batch_inference").default_status == (
            dg.DefaultScheduleStatus.RUNNING)
    evaluation_job = defs.resolve_job_def("evaluation_job")
    assert {k.path[0] for k in evaluation_job.asset_layer.selected_asset_keys} == set(specs)


def test_gate_checks_are_blocking_and_drift_only_warns():
    defs = build_definitions(discover_specs(REPO / "assets"))
    specs = [spec for a in defs.resolve_asset_graph().assets_defs for spec in a.check_specs]
    assert specs and all(spec.blocking == (spec.name != "prediction_drift") for spec in specs)


def test_definitions_module_loads_without_heavy_imports():
    code = ("import sys; import fmops_pipelines.definitions as d; "
            "print(sorted(m for m in ('torch', 'mlflow', 'great_expectations', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dg_lists_every_task_through_the_defs_folder():
    """`dg list defs` (Dagster's own tooling) sees every task's assets, checks, jobs, schedules and resources."""
    dg_cli = REPO / ".venv" / "bin" / "dg"
    cmd = [str(dg_cli)] if dg_cli.exists() else [sys.executable, "-m", "dagster_dg_cli.cli"]
    out = subprocess.run([*cmd, "list", "defs", "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    listed = json.loads(out.stdout)
    specs = discover_specs(REPO / "assets")
    assets = {a["asset_key"] for a in listed["assets"]}
    assert {f"{t}/{name}" for t in specs for name in STAGES} <= assets
    assert {j["name"] for j in listed["jobs"]} >= {f"{t}_lifecycle" for t in specs} | {"evaluation_job"}
    assert {s["name"] for s in listed["schedules"]} == {f"{t}_nightly_batch_inference" for t in specs}
    assert {r["name"] for r in listed["resources"]} == {"io_manager", "home", "mlflow", "fm", "compute", "label_studio"}
    assert {s["name"] for s in listed["sensors"]} == {f"{t}_{kind}_sensor" for t in specs for kind in ("inbox", "review")}
    assert len(listed["asset_checks"]) == sum(4 + len(s.gates) for s in specs.values())


def test_asset_specs_snapshot(snapshot):
    """Every asset's shape (key, group, stage, pool, kinds, owners, code_version, deps, checks) as a reviewed snapshot:
    a change of shape shows as a diff in tests/unit/__snapshots__ (update with `pytest --snapshot-update`)."""
    graph = build_definitions(discover_specs(REPO / "assets")).resolve_asset_graph()
    shape = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        shape[key.to_user_string()] = {
            "group": node.group_name, "stage": node.tags["stage"], "pool": sorted(node.pools),
            "kinds": sorted(node.kinds), "owners": sorted(node.owners),
            "code_version": node.code_version, "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
            "description": node.description}
    assert shape == snapshot


def test_training_runs_carry_the_kubernetes_settings_given_in_the_environment(monkeypatch):
    """The lifecycle job (it trains) gets FMOPS_TRAINING_K8S_CONFIG as its dagster-k8s/config tag, for the
    K8s run launcher to put its pods on GPU nodes; batch inference does not; bad JSON is one line."""
    from fmops_pipelines.errors import EnvironmentProblem
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.stages.jobs import task_jobs

    spec = load_spec(REPO / "assets" / "sms_spam" / "task.yaml")
    gpu = {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}
    monkeypatch.setenv("FMOPS_TRAINING_K8S_CONFIG", json.dumps(gpu))
    lifecycle, _, batch = task_jobs(spec)
    assert json.loads(lifecycle.tags["dagster-k8s/config"]) == gpu and not batch.tags
    monkeypatch.setenv("FMOPS_TRAINING_K8S_CONFIG", "{nodeSelector: gpu}")
    with pytest.raises(EnvironmentProblem, match=r"^FMOPS_TRAINING_K8S_CONFIG: not valid JSON"):
        task_jobs(spec)
