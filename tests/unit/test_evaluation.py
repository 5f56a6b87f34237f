import numpy as np

from fmops_pipelines.evaluation.gates import GATE_METRICS, evaluate_gates
from fmops_pipelines.evaluation.metrics import report
from fmops_pipelines.evaluation.summary import SUMMARY_KEYS, build_summary
from fmops_pipelines.spec import GateSpec


def _summary(gates):
    test = report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["ham", "spam"])
    measured = {"test": test, "throughput": {"fm_texts_per_s": 100.0, "specialist_texts_per_s": 50_000.0},
                "baselines": {"best_prompt": {"accuracy": 0.5, "macro_f1": 0.5},
                              "majority_vote": {"accuracy": 0.6, "macro_f1": 0.6},
                              "label_model": {"accuracy": 0.7, "macro_f1": 0.7}}}
    return build_summary("sms_spam", {"name": "sms_spam-specialist", "version": 3}, test, measured["baselines"],
                         measured["throughput"], {"fm_calls": 0, "fm_cache_hits": 10, "labelers": 4},
                         evaluate_gates(gates, measured))


def test_report_per_class():
    test = report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["ham", "spam"])
    assert test["n"] == 4 and test["accuracy"] == 0.75
    assert test["per_class"]["ham"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667}
    assert test["macro_f1"] == round((0.6667 + 0.8) / 2, 4)


def test_summary_has_exactly_the_contract_keys_and_gate_verdicts():
    gates = [GateSpec(metric="test_macro_f1", min=0.7), GateSpec(metric="speedup_over_fm", min=100),
             GateSpec(metric="lift_over_label_model", min=0.1, name="beats_label_model_clearly")]
    summary = _summary(gates)
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["model"] == {"name": "sms_spam-specialist", "version": "3", "alias": None}
    assert [(g["name"], g["passed"]) for g in summary["gates"]] == [
        ("test_macro_f1", True), ("speedup_over_fm", True), ("beats_label_model_clearly", False)]
    assert summary["gates"][1]["value"] == 500.0 and summary["passed"] is False
    assert _summary(gates[:2])["passed"] is True


def test_max_gate_and_every_metric_is_computable():
    summary = _summary([GateSpec(metric="min_class_f1", max=0.5)])
    assert summary["gates"][0] == {"name": "min_class_f1", "value": 0.6667, "threshold": 0.5, "passed": False}
    assert all(isinstance(fn(summary), float) for fn in GATE_METRICS.values())
