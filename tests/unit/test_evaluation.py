import numpy as np
import pandas as pd
import pytest

from fmops_pipelines.evaluation.calibration import expected_calibration_error, reliability_bins
from fmops_pipelines.evaluation.gates import METRICS, evaluate_gates
from fmops_pipelines.evaluation.metrics import report
from fmops_pipelines.evaluation.report import render_report
from fmops_pipelines.evaluation.slices import slice_metrics
from fmops_pipelines.evaluation.summary import SUMMARY_KEYS, build_summary
from fmops_pipelines.spec import GateSpec, SliceSpec


def _measured(champion_f1=None):
    test = report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["ham", "spam"])
    return {"test": test, "throughput": {"fm_texts_per_s": 100.0, "specialist_texts_per_s": 50_000.0},
            "baselines": {"best_prompt": {"accuracy": 0.5, "macro_f1": 0.5},
                          "majority_vote": {"accuracy": 0.6, "macro_f1": 0.6},
                          "label_model": {"accuracy": 0.7, "macro_f1": 0.7}},
            "labeling": {"fm_calls": 0, "fm_cache_hits": 10, "labelers": 4},
            "details": {"labels": ["ham", "spam"], "confusion": [[1, 1], [0, 2]], "ece": 0.08,
                        "reliability": [{"lo": 0.5, "hi": 0.6, "n": 4, "confidence": 0.55, "accuracy": 0.75}],
                        "slices": [{"slice": "length", "bucket": "chars 0-39", "n": 30, "accuracy": 0.9, "macro_f1": 0.8,
                                    "gated": True},
                                   {"slice": "length", "bucket": "chars >=40", "n": 5, "accuracy": 0.2, "macro_f1": 0.1,
                                    "gated": False}],
                        "label_coverage": 0.6, "label_model_dev_accuracy": 0.8,
                        "champion": {"version": "2" if champion_f1 else None, "macro_f1": champion_f1}}}


def _summary(gates, measured=None):
    m = measured or _measured()
    return build_summary("sms_spam", {"name": "sms_spam-specialist", "version": 3}, m["test"], m["baselines"],
                         m["throughput"], m["labeling"], evaluate_gates(gates, m))


def test_report_per_class():
    test = report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["ham", "spam"])
    assert test["n"] == 4 and test["accuracy"] == 0.75
    assert test["per_class"]["ham"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667}


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


def test_every_gate_family():
    gates = [GateSpec(metric="label_coverage", min=0.5), GateSpec(metric="label_model_dev_accuracy", min=0.9),
             GateSpec(metric="slice_macro_f1", slice="length", min=0.75), GateSpec(metric="ece", max=0.05),
             GateSpec(metric="regression_vs_champion", min=-0.01), GateSpec(metric="specialist_texts_per_s", min=1000),
             GateSpec(metric="min_class_f1", max=0.5)]
    verdicts = {g["name"]: (g["value"], g["passed"]) for g in _summary(gates)["gates"]}
    assert verdicts == {"label_coverage": (0.6, True), "label_model_dev_accuracy": (0.8, False),
                        "slice_macro_f1_length": (0.8, True),  # the 5-row bucket is below min_rows: not gated
                        "ece": (0.08, False), "regression_vs_champion": (0.0, True),
                        "specialist_texts_per_s": (50000.0, True), "min_class_f1": (0.6667, False)}
    worse = evaluate_gates([GateSpec(metric="regression_vs_champion", min=-0.01)], _measured(champion_f1=0.9))
    assert worse == [{"name": "regression_vs_champion", "value": -0.1667, "threshold": -0.01, "passed": False}]
    assert set(METRICS) >= {g.metric for g in gates}


def test_slice_gate_needs_a_declared_slice():
    with pytest.raises(ValueError, match="'slice' goes with metric slice_macro_f1"):
        GateSpec(metric="test_accuracy", min=0.5, slice="length")


def test_calibration_error():
    y = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[y]
    assert expected_calibration_error(perfect, y) == 0.0
    overconfident = np.array([[0.99, 0.01]] * 4)  # says ham with 99 %, right half the time
    assert expected_calibration_error(overconfident, y) == pytest.approx(0.49)
    assert reliability_bins(overconfident, y) == [{"lo": 0.9, "hi": 1.0, "n": 4, "confidence": 0.99, "accuracy": 0.5}]


def test_slices_by_length_and_column():
    rows = pd.DataFrame({"text": ["short", "a bit longer text here", "x" * 50, "tiny"], "video": ["a", "b", "a", "b"]})
    y, pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    by_len = slice_metrics(rows, y, pred, SliceSpec(name="length", length_buckets=[10, 40], min_rows=2), 2)
    assert [(b["bucket"], b["n"], b["gated"]) for b in by_len] == [
        ("chars 0-9", 2, True), ("chars 10-39", 1, False), ("chars >=40", 1, False)]
    by_video = slice_metrics(rows, y, pred, SliceSpec(name="video", column="video", min_rows=1), 2)
    assert [(b["bucket"], b["accuracy"]) for b in by_video] == [("a", 0.5), ("b", 1.0)]


def test_html_report_is_self_contained():
    m = _measured()
    summary = _summary([GateSpec(metric="test_macro_f1", min=0.9)], m)
    prompts = pd.DataFrame({"rank": [1], "prompt_id": ["p_1"], "template": ["{label}<script>"], "selected": [True]})
    labelers = pd.DataFrame({"labeler": ["p_1"], "coverage": [0.5]})
    html = render_report(summary, m["details"], prompts, labelers)
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 2
    assert "gates FAILED" in html and "chars &gt;=40" in html
    assert "<script>" not in html and "http" not in html  # nothing external, user text escaped
    assert "no usable answer" not in html  # nothing to report when every request was answered
    m["details"]["fm_abstains"] = {"http_503": 3, "off_label": 2}
    html = render_report(summary, m["details"], prompts, labelers)
    assert "5 FM requests got no usable answer and abstained (http_503 3, off_label 2)" in html


def test_gold_only_baselines_learn_from_the_gold_rows_alone_and_gate_the_lift(tmp_path, minilm):
    """Logistic regression on the FM's embeddings, on TF-IDF, on both and on both beside the FM's token vectors,
    each fitted on the dev gold rows only (C and class weights by 3-fold CV there) and scored on test: on a real
    sms_spam slice's 60 dev rows (8 spam) the embedding one reaches ~0.9 macro-F1 (always-ham: 0.46) and TF-IDF
    learns nothing yet; the gate reads the best."""
    from fmops_pipelines.evaluation.gold_only import gold_only_baselines
    from fmops_pipelines.evaluation.summary import gold_only_rows
    from tests.conftest import sms_student_data

    d = sms_student_data(tmp_path)
    gold = gold_only_baselines(minilm, d["dev"], d["y_dev"], d["test"], d["y_test"], 2)
    assert [b["kind"] for b in gold] == ["logreg_fm_embeddings", "tfidf_logreg", "logreg_fm_embeddings_tfidf",
                                         "logreg_fm_embeddings_tokens_tfidf"]
    assert all(b["gold_rows"] == len(d["dev"]) == 60 for b in gold) and gold[0]["macro_f1"] > 0.8, gold
    assert gold[2]["macro_f1"] > 0.8 and gold[3]["macro_f1"] > 0.8  # the words do not drown the meaning
    shuffled = gold_only_baselines(minilm, d["dev"], np.random.default_rng(0).permutation(d["y_dev"]), d["test"],
                                   d["y_test"], 2)
    assert shuffled[0]["macro_f1"] < gold[0]["macro_f1"] - 0.2  # it is the gold labels that teach
    measured = _measured()
    measured["baselines"]["gold_only"] = gold
    [verdict] = evaluate_gates([GateSpec(metric="lift_over_gold_only", min=0.0)], measured)
    assert verdict["value"] == round(measured["test"]["macro_f1"] - max(b["macro_f1"] for b in gold), 4)
    assert [name for name, _ in gold_only_rows(measured["baselines"])] == [
        "gold only: logreg on FM embeddings", "gold only: TF-IDF + logreg",
        "gold only: logreg on FM embeddings + TF-IDF", "gold only: logreg on FM embeddings + token vectors + TF-IDF"]
    [none] = evaluate_gates([GateSpec(metric="lift_over_gold_only", min=0.0)], _measured())  # none computed: fails
    assert not none["passed"]
