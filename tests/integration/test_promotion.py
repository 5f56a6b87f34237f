"""Gates decide promotion: a specialist trained on shuffled labels fails them and is not promoted; a good
one is promoted with the old champion kept as `previous`; `fmops rollback` and `fmops promote` move it back.
"""

import numpy as np
import pytest

from fmops_pipelines import paths
from fmops_pipelines.cli import main
from fmops_pipelines.launcher import stored
from fmops_pipelines.mlflow_store import using_uri
from fmops_pipelines.specialist import packaging
from tests.conftest import small_sms_spec, write_task

pytestmark = pytest.mark.integration
TASK = "sms_gated"
GATES = [{"metric": "test_macro_f1", "min": 0.6}, {"metric": "regression_vs_champion", "min": -0.02},
         {"metric": "lift_over_best_prompt", "min": -1.0}]


@pytest.fixture()
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("FMOPS_ASSETS_DIR", str(tmp_path / "assets"))
    write_task(tmp_path / "assets", TASK, small_sms_spec(fixed_method=True, gates=GATES,
                                                         slices=[{"name": "length", "length_buckets": [40]}]))


def alias_version(task: str, alias: str) -> str | None:
    with using_uri(paths.mlflow_tracking_uri()):  # the registry fmops runs use
        return packaging.alias_version(task, alias)


def champion_version(task: str) -> str | None:
    return alias_version(task, "champion")


def _shuffled_training_labels(monkeypatch):
    """Weaken the specialist: both teachers' probabilistic labels of the pool (the label model's and the gold
    teacher's) are permuted across rows before training."""
    from fmops_pipelines.supervision import gold_teacher, label_models

    def permuted(out):
        cols = [c for c in out.columns if c.startswith("p_")]
        out[cols] = out[cols].to_numpy()[np.random.default_rng(0).permutation(len(out))]
        return out

    real, real_pool = label_models.training_labels, gold_teacher.pool_labels
    monkeypatch.setattr(label_models, "training_labels", lambda *a, **kw: permuted(real(*a, **kw)))
    monkeypatch.setattr(gold_teacher, "pool_labels", lambda *a, **kw: permuted(real_pool(*a, **kw)))


def test_gates_decide_promotion_and_rollback_restores(project, monkeypatch, capsys):
    assert main(["run", TASK]) == 0
    first = stored(TASK, "evaluation")
    assert first["passed"] and champion_version(TASK) == first["model"]["version"] == "1"

    with monkeypatch.context() as patch:
        _shuffled_training_labels(patch)
        assert main(["run", TASK]) == 1
    weak = stored(TASK, "evaluation")
    assert weak["model"]["version"] == "2" and not weak["passed"]
    failed = {g["name"] for g in weak["gates"] if not g["passed"]}
    assert {"test_macro_f1", "regression_vs_champion"} <= failed
    assert champion_version(TASK) == "1" and alias_version(TASK, "previous") is None
    assert "gates failed" in capsys.readouterr().err
    assert main(["evaluate", TASK, "--json"]) == 1  # what CI runs on a pull request
    assert '"passed": false' in capsys.readouterr().out

    assert main(["run", TASK]) == 0
    assert champion_version(TASK) == "3" and alias_version(TASK, "previous") == "1"
    assert stored(TASK, "evaluation")["gates"][1]["value"] == pytest.approx(0.0, abs=0.05)  # vs champion v1

    assert main(["rollback", TASK]) == 0
    assert champion_version(TASK) == "1" and alias_version(TASK, "previous") == "3"
    assert stored(TASK, "champion")["version"] == "1"
    assert main(["promote", TASK, "3"]) == 0 and champion_version(TASK) == "3"
    assert main(["promote", TASK, "99"]) == 2
    assert "no registered version '99'" in capsys.readouterr().err
