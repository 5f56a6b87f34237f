import subprocess
import sys

import dagster as dg

from fmops_pipelines.defs.factory import build_definitions
from fmops_pipelines.spec import discover_specs
from tests.conftest import REPO

STAGES = {"dataset": "data", "splits": "data", "prompt_scores": "exploration", "weak_label_matrix": "labeling",
          "label_model": "labeling", "training_labels": "labeling", "specialist": "training",
          "evaluation": "evaluation", "champion": "deployment", "batch_predictions": "deployment"}


def test_every_task_has_the_whole_lifecycle_with_conventions():
    specs = discover_specs(REPO / "assets")
    defs = build_definitions(specs)
    graph = defs.resolve_asset_graph()
    for task, spec in specs.items():
        for name, group in STAGES.items():
            node = graph.get(dg.AssetKey([task, name]))
            assert node.group_name == group
            assert node.kinds and node.owners and node.code_version and node.description
        upstream = {k.path[-1] for k in graph.get(dg.AssetKey([task, "evaluation"])).parent_keys}
        assert upstream == {"splits", "prompt_scores", "weak_label_matrix", "label_model", "specialist"}
        check_names = {k.name for k in graph.asset_check_keys if k.asset_key.path[0] == task}
        assert check_names == {"dataset_expectations", "label_matrix_expectations", "training_label_expectations",
                               *(g.check_name for g in spec.gates)}
        for job in ("lifecycle", "evaluation", "batch_inference"):
            defs.resolve_job_def(f"{task}_{job}")
    evaluation_job = defs.resolve_job_def("evaluation_job")
    assert {k.path[0] for k in evaluation_job.asset_layer.selected_asset_keys} == set(specs)


def test_gate_checks_are_blocking():
    defs = build_definitions(discover_specs(REPO / "assets"))
    specs = [spec for a in defs.resolve_asset_graph().assets_defs for spec in a.check_specs]
    assert specs and all(spec.blocking for spec in specs)


def test_definitions_module_loads_without_heavy_imports():
    code = ("import sys; import fmops_pipelines.definitions as d; "
            "print(sorted(m for m in ('torch', 'mlflow', 'great_expectations', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
